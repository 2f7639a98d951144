package router

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-mqtt/switchboard/inbox"
	"github.com/switchboard-mqtt/switchboard/store"
)

// Mailbox management: list a client's queued messages with paging and a topic filter,
// delete one, or purge them all (or those on one topic). A deleted message gets the
// receipt deleted when it was sent with a receipt. What is deleted is what the store
// holds: a message the client's node has already read (a connected client's next few
// messages) may still reach the client, and then its receipt says deleted all the same.

// MailboxView is the answer of GET /v1/clients/{id}/mailbox.
type MailboxView struct {
	Client   string           `json:"client"`
	Depth    int              `json:"depth"`
	Messages []MailboxMessage `json:"messages"`
	// Next is the cursor of the next page (pass it as after), absent on the last.
	Next string `json:"next,omitempty"`
}

// MailboxMessage is one message waiting in a mailbox.
type MailboxMessage struct {
	ID       string    `json:"id"`
	Topic    string    `json:"topic"`
	Payload  []byte    `json:"payload"` // base64 in JSON
	QoS      byte      `json:"qos"`
	Accepted time.Time `json:"accepted"`
	// ExpiresIn is the time it has left, in seconds, as the store counted when it was read.
	ExpiresIn float64 `json:"expires_in"`
	Seq       uint64  `json:"seq"`
}

// mailboxScanCalls bounds the store reads of one filtered listing: a page with a filter
// that matches little stops there and answers next.
const mailboxScanCalls = 10

// mailboxQuery is the client and the query parameters of a mailbox request.
type mailboxQuery struct {
	client string
	after  uint64
	high   bool // after is in the high-priority lane (a cursor "h<seq>")
	topic  string
	limit  int
}

func parseMailboxQuery(req *http.Request, defLimit int) (mailboxQuery, error) {
	q := mailboxQuery{client: req.PathValue("id"), limit: defLimit, topic: req.URL.Query().Get("topic")}
	if err := inbox.ValidateClientID(q.client); err != nil {
		return q, fieldError{"id", err.Error()}
	}
	if s := req.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 1000 {
			return q, fieldError{"limit", fmt.Sprintf("%q: want 0 to 1000", s)}
		}
		q.limit = n
	}
	if s := req.URL.Query().Get("after"); s != "" {
		var high bool
		s, high = strings.CutPrefix(s, "h")
		q.high = high
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return q, fieldError{"after", fmt.Sprintf("%q: want the next of a previous page", s)}
		}
		q.after = n
	}
	return q, nil
}

// scanMailbox walks the mailbox after q's cursor, the normal lane and then the
// high-priority lane (when the store has one), calling keep for each message on q.topic
// (all when empty) until keep returns false, the mailbox ends or calls store reads were
// made. It returns the cursor of the last message examined ("h<seq>" in the high lane)
// and whether the mailbox ended.
func (r *Router) scanMailbox(ctx context.Context, q mailboxQuery, calls int, keep func(store.Message) bool) (string, bool, error) {
	after, high := q.after, q.high
	prio, hasLanes := r.store.(store.Priorities)
	cursor := func() string {
		if high {
			return "h" + strconv.FormatUint(after, 10)
		}
		return strconv.FormatUint(after, 10)
	}
	if high && !hasLanes {
		return cursor(), true, nil // a high-lane cursor for a store without lanes: nothing there
	}
	for range calls {
		var msgs []store.Message
		var err error
		if high {
			msgs, err = prio.PeekHigh(ctx, q.client, after, 1000)
		} else {
			msgs, err = r.store.Peek(ctx, q.client, after, 1000)
		}
		if err != nil {
			return cursor(), false, err
		}
		for _, m := range msgs {
			after = m.Seq
			if q.topic != "" && m.Topic != q.topic {
				continue
			}
			if !keep(m) {
				return cursor(), false, nil
			}
		}
		if len(msgs) < 1000 {
			if high || !hasLanes {
				return cursor(), true, nil
			}
			high, after = true, 0
		}
	}
	return cursor(), false, nil
}

// mailboxRequest reads a mailbox request's client and query, answering 400 or 403 (and
// reporting false) when it is bad or not the token's to make.
func (r *Router) mailboxRequest(w http.ResponseWriter, req *http.Request, defLimit int) (mailboxQuery, bool) {
	q, err := parseMailboxQuery(req, defLimit)
	if err != nil {
		r.badRequest(w, err, nil)
		return q, false
	}
	return q, r.scopeAllows(w, req, "id", q.client)
}

func (r *Router) handleMailbox(w http.ResponseWriter, req *http.Request) {
	q, ok := r.mailboxRequest(w, req, 10)
	if !ok {
		return
	}
	var err error
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.StoreTimeout)
	defer cancel()
	v := MailboxView{Client: q.client, Messages: []MailboxMessage{}}
	if q.limit > 0 {
		last, ended, err := r.scanMailbox(ctx, q, mailboxScanCalls, func(m store.Message) bool {
			v.Messages = append(v.Messages, MailboxMessage{
				ID: m.ID, Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Accepted: m.Accepted,
				ExpiresIn: m.TTL.Seconds(), Seq: m.Seq,
			})
			return len(v.Messages) < q.limit
		})
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: err.Error()})
			return
		}
		if !ended {
			v.Next = last
		}
	}
	if v.Depth, err = r.store.Depth(ctx, q.client); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// MailboxDeleted answers a deletion from a mailbox.
type MailboxDeleted struct {
	Client  string   `json:"client"`
	Deleted int      `json:"deleted"`
	IDs     []string `json:"ids"`
	// Depth is the mailbox depth after the deletion.
	Depth int `json:"depth"`
}

// handleMailboxDelete deletes one message: DELETE /v1/clients/{id}/mailbox/{msg}.
func (r *Router) handleMailboxDelete(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("msg")
	r.deleteWhere(w, req, id, func(m store.Message) bool { return m.ID == id })
}

// handleMailboxPurge deletes every queued message, or those on ?topic=:
// DELETE /v1/clients/{id}/mailbox.
func (r *Router) handleMailboxPurge(w http.ResponseWriter, req *http.Request) {
	r.deleteWhere(w, req, "", func(store.Message) bool { return true })
}

// deleteWhere walks the whole mailbox of a request's client and deletes the messages
// match takes: the one named one (404 if it is not queued), or all.
func (r *Router) deleteWhere(w http.ResponseWriter, req *http.Request, one string, match func(store.Message) bool) {
	q, ok := r.mailboxRequest(w, req, 0)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 4*r.cfg.StoreTimeout)
	defer cancel()
	var ids []string
	if _, _, err := r.scanMailbox(ctx, q, r.cfg.MailboxLimit/1000+1, func(m store.Message) bool {
		if match(m) {
			ids = append(ids, m.ID)
		}
		return one == "" || len(ids) == 0 // the one named: stop once found
	}); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: err.Error()})
		return
	}
	if one != "" && len(ids) == 0 {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("no message %q in the mailbox of %q", one, q.client), Field: "msg"})
		return
	}
	r.deleteFromMailbox(ctx, w, q.client, ids)
}

// deleteFromMailbox records the deleted receipts (of the messages registered for one)
// and then deletes the messages, so that a failure between the two leaves a message
// whose receipt says deleted still queued (a retry deletes it), never a deleted message
// without its receipt.
func (r *Router) deleteFromMailbox(ctx context.Context, w http.ResponseWriter, client string, ids []string) {
	if rs := r.receipts; rs != nil && len(ids) > 0 {
		recs := make([]store.Receipt, len(ids))
		for i, id := range ids {
			recs[i] = store.Receipt{Client: client, ID: id, Status: store.ReceiptDeleted, Detail: "deleted through the API", OnlyPending: true}
		}
		if err := rs.Finish(ctx, recs...); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: "record the receipts; nothing deleted: " + err.Error()})
			return
		}
	}
	if len(ids) > 0 {
		if err := r.store.Remove(ctx, store.Removal{Client: client, IDs: ids}); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: "delete; retry: " + err.Error()})
			return
		}
	}
	depth, err := r.store.Depth(ctx, client)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: err.Error()})
		return
	}
	if ids == nil {
		ids = []string{}
	}
	r.log.Info("deleted from a mailbox through the API", "client", client, "messages", len(ids))
	writeJSON(w, http.StatusOK, MailboxDeleted{Client: client, Deleted: len(ids), IDs: ids, Depth: depth})
}
