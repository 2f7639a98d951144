package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/inbox"
	"github.com/switchboard-mqtt/switchboard/store"
)

// FanoutConfig bounds fan-out: one message sent to a list of client ids (to_many) or to
// a group (see groups.go), each recipient getting a message of its own.
type FanoutConfig struct {
	// MaxList is the most client ids in one request's to_many.
	MaxList int
	// InlineGroup is the largest group sent to within the request, answered like a list;
	// a larger one is sent by a background job (202 with the job's id). At most
	// store.MaxGroupPage.
	InlineGroup int
	// Parallel is how many slices of a fan-out (each of MaxBatch messages) are routed at
	// once: the bound on a fan-out's concurrency.
	Parallel int
	// JobLease is how long a router holds a job it runs without renewing its claim: when
	// the router dies, another one resumes the job this long after its last renewal.
	JobLease time.Duration
	// JobPoll is how often a router looks for a job to claim (it also looks at once when
	// it creates one).
	JobPoll time.Duration
	// JobPage is how many members a job sends to per step; its cursor is recorded after
	// each step, so a resumed job sends at most one step again.
	JobPage int
}

// DefaultFanoutConfig returns the defaults.
func DefaultFanoutConfig() FanoutConfig {
	return FanoutConfig{
		MaxList:     10_000,
		InlineGroup: 1000,
		Parallel:    4,
		JobLease:    10 * time.Second,
		JobPoll:     time.Second,
		JobPage:     1000,
	}
}

func (f FanoutConfig) validate() error {
	switch {
	case f.MaxList <= 0:
		return fmt.Errorf("Fanout.MaxList %d: must be positive", f.MaxList)
	case f.InlineGroup < 0 || f.InlineGroup > store.MaxGroupPage:
		return fmt.Errorf("Fanout.InlineGroup %d: must be between 0 and %d", f.InlineGroup, store.MaxGroupPage)
	case f.Parallel <= 0:
		return fmt.Errorf("Fanout.Parallel %d: must be positive", f.Parallel)
	case f.JobLease < time.Second:
		return fmt.Errorf("Fanout.JobLease %v: must be at least 1s", f.JobLease)
	case f.JobPoll <= 0 || f.JobPoll > f.JobLease:
		return fmt.Errorf("Fanout.JobPoll %v: must be positive and at most Fanout.JobLease %v", f.JobPoll, f.JobLease)
	case f.JobPage <= 0 || f.JobPage > store.MaxGroupPage:
		return fmt.Errorf("Fanout.JobPage %d: must be between 1 and %d", f.JobPage, store.MaxGroupPage)
	}
	return nil
}

// FanoutItem is one recipient's entry of a fan-out answer.
type FanoutItem struct {
	To string `json:"to"`
	BatchItem
}

// FanoutAnswer is the answer to a fan-out sent within the request.
type FanoutAnswer struct {
	// ID is the request's message id, from which each recipient's is derived (FanoutID).
	ID      string       `json:"id"`
	Group   string       `json:"group,omitempty"`
	Results []FanoutItem `json:"results"`
}

// FanoutID is the message id of one recipient of a fan-out whose request id is base: the
// first 32 hex digits of the SHA-256 of base, a zero byte and the client id. A retry of the
// request with the same id gives every recipient the same id again, which its mailbox
// recognises; two recipients never share one.
func FanoutID(base, client string) string {
	h := sha256.New()
	h.Write([]byte(base))
	h.Write([]byte{0})
	h.Write([]byte(client))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// maxIDBytes is the most bytes one client id of to_many may take in the body: 128 bytes,
// each possibly a \u escape of 6, with its quotes and comma.
const maxIDBytes = 128*6 + 3

// sendLimit bounds the body of POST /v1/messages: a single send and the largest list.
func (r *Router) sendLimit() int64 {
	return min(r.singleLimit()+int64(r.cfg.Fanout.MaxList)*maxIDBytes, max(r.cfg.MaxBody, r.singleLimit()))
}

// template validates a fan-out request's message without its recipient. Its Topic is
// empty when each recipient gets its own inbox topic.
func (c Config) template(req Request) (Message, error) {
	one := req
	one.ToMany, one.Group, one.To = nil, "", "x"
	m, err := c.validate(one)
	if err != nil {
		return Message{}, err
	}
	m.To, m.Topic = "", req.Topic
	return m, nil
}

// recipients checks a to_many list: 1 to MaxList valid, distinct client ids.
func (c Config) recipients(ids []string) error {
	switch {
	case len(ids) == 0:
		return fieldError{"to_many", "is empty: give 1 to " + fmt.Sprint(c.Fanout.MaxList) + " client ids"}
	case len(ids) > c.Fanout.MaxList:
		return fieldError{"to_many", fmt.Sprintf("%d client ids is over the maximum of %d", len(ids), c.Fanout.MaxList)}
	}
	seen := make(map[string]int, len(ids))
	for i, id := range ids {
		if err := inbox.ValidateClientID(id); err != nil {
			return fieldError{fmt.Sprintf("to_many[%d]", i), err.Error()}
		}
		if j, dup := seen[id]; dup {
			return fieldError{fmt.Sprintf("to_many[%d]", i), fmt.Sprintf("%q is also to_many[%d]: each client once", id, j)}
		}
		seen[id] = i
	}
	return nil
}

// forRecipients makes one message per recipient from t, with ids derived from base.
func (c Config) forRecipients(t Message, base string, ids []string) ([]Message, error) {
	msgs := make([]Message, len(ids))
	for i, id := range ids {
		m := t
		m.To, m.ID = id, FanoutID(base, id)
		if m.Topic == "" {
			m.Topic = inbox.Topic(c.InboxPrefix, id)
			if err := inbox.ValidateTopic(m.Topic); err != nil {
				return nil, fieldError{"to", fmt.Sprintf("client %q: %v", id, err)}
			}
		}
		msgs[i] = m
	}
	return msgs, nil
}

// handleFanout serves POST /v1/messages with to_many or group.
func (r *Router) handleFanout(w http.ResponseWriter, req *http.Request, body Request) {
	switch {
	case body.To != "" && body.ToMany != nil, body.To != "" && body.Group != "":
		r.badRequest(w, fieldError{"to", "give one of to, to_many and group"}, nil)
		return
	case body.ToMany != nil && body.Group != "":
		r.badRequest(w, fieldError{"group", "give one of to, to_many and group"}, nil)
		return
	}
	t, err := r.cfg.template(body)
	if err != nil {
		r.badRequest(w, err, nil)
		return
	}
	wait, err := r.cfg.maxWait(body.MaxWait)
	if err != nil {
		r.badRequest(w, err, nil)
		return
	}
	base := t.ID
	if base == "" {
		base = NewID(time.Now().Add(r.cfg.ClockSkew))
	}
	if body.Group != "" {
		if tok, _ := req.Context().Value(tokenKey{}).(Token); tok.Scoped() {
			writeJSON(w, http.StatusForbidden, ErrorBody{Error: fmt.Sprintf(
				"token %s is scoped to the clients whose id starts with %q: a group spans clients", tok.Name, tok.Prefix), Field: "group"})
			return
		}
		r.sendGroup(w, req, body.Group, t, base, wait)
		return
	}
	if err := r.cfg.recipients(body.ToMany); err != nil {
		r.badRequest(w, err, nil)
		return
	}
	if !r.scopeAllowsAll(w, req, "to_many", body.ToMany) {
		return
	}
	msgs, err := r.cfg.forRecipients(t, base, body.ToMany)
	if err != nil {
		r.badRequest(w, err, nil)
		return
	}
	r.writeFanout(w, FanoutAnswer{ID: base, Results: r.fanOut(req.Context(), msgs, wait)})
}

// writeFanout answers a fan-out sent within the request: 200 when every recipient's
// message was accepted, 207 otherwise.
func (r *Router) writeFanout(w http.ResponseWriter, a FanoutAnswer) {
	status := http.StatusOK
	for _, it := range a.Results {
		if it.Error != "" {
			status = http.StatusMultiStatus
		}
		if it.Code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", retryAfter)
		}
	}
	writeJSON(w, status, a)
}

// fanOut routes msgs (one per recipient) in slices of at most MaxBatch, Parallel at a time,
// and answers each as the batch API does.
func (r *Router) fanOut(ctx context.Context, msgs []Message, maxWait time.Duration) []FanoutItem {
	out := make([]FanoutItem, len(msgs))
	sem := make(chan struct{}, r.cfg.Fanout.Parallel)
	var wg sync.WaitGroup
	// Slices of MaxBatch, but small enough that a job's page keeps Parallel of them busy.
	size := min(r.cfg.MaxBatch, max(minSlice, (len(msgs)+r.cfg.Fanout.Parallel-1)/r.cfg.Fanout.Parallel))
	for start := 0; start < len(msgs); start += size {
		part := msgs[start:min(start+size, len(msgs))]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for i, it := range r.SendBatch(ctx, part, maxWait) {
				out[start+i] = FanoutItem{To: part[i].To, BatchItem: it}
			}
		}()
	}
	wg.Wait()
	return out
}

// minSlice is the smallest slice fanOut routes on its own.
const minSlice = 100

// retryable reports a failure worth trying again later (the store was unavailable or
// slow: a 503), as opposed to a refusal (a full mailbox or store, a message the client
// cannot take).
func retryable(err error) bool {
	return err != nil && !errors.Is(err, ErrRejected) && !errors.Is(err, store.ErrMailboxFull) && !errors.Is(err, store.ErrStoreFull)
}
