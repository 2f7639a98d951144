package router

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// A job sends one message to every member of a group too large to send to within the
// request. Its state lives in the store (store.Jobs), so any router answers
// GET /v1/jobs/{id}, and whichever router holds its lease runs it: page by page of
// JobPage members from its cursor, the cursor and the counts recorded after each page.
// A router that dies stops renewing its lease; another (or the same one, restarted)
// claims the job when the lease has run out and resumes from the cursor, so the page in
// flight is sent again: each recipient's message id is derived from the job's (FanoutID),
// so a copy still in the mailbox is recognised (and counted as a duplicate). A member
// added behind the cursor while the job runs is not sent to; one added ahead of it is.

// JobView is the answer of GET /v1/jobs/{id}, and the 202 that starts a job.
type JobView struct {
	Job string `json:"job"`
	// ID is the message id the recipients' ids derive from (FanoutID).
	ID    string         `json:"id"`
	Group string         `json:"group"`
	State store.JobState `json:"state"`
	// Total is the group's size when the job was created; Sent the recipients counted so
	// far, by outcome below.
	Total int `json:"total"`
	Sent  int `json:"sent"`
	store.JobCounts
	Error   string    `json:"error,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
	// Elapsed is the time from creation to the end, or to now while it runs, in seconds.
	Elapsed float64 `json:"elapsed_seconds"`
	// Claims counts the routers that ran it: more than 1 means it was resumed.
	Claims int `json:"claims"`
	// Duplicate: the request was a retry, answered with the job it made before.
	Duplicate bool `json:"duplicate,omitempty"`
}

// jobSpec is what a job sends, as the store keeps it (store.Job.Spec).
type jobSpec struct {
	ID      string `json:"id"`
	Topic   string `json:"topic,omitempty"`
	Payload []byte `json:"payload,omitempty"`
	QoS     byte   `json:"qos"`
	TTL     int64  `json:"ttl_ms"`
	MaxWait int64  `json:"max_wait_ms,omitempty"`
	// NoReceipt is the negative so that a job stored before receipts existed decodes
	// with them on, the default.
	NoReceipt bool `json:"no_receipt,omitempty"`
	// CollapseKey and DeliverAt (Unix ms; 0: none) are each recipient's.
	CollapseKey string `json:"collapse_key,omitempty"`
	DeliverAt   int64  `json:"deliver_at_ms,omitempty"`
	Priority    uint8  `json:"priority,omitempty"`
}

func (s jobSpec) message() Message {
	m := Message{ID: s.ID, Topic: s.Topic, Payload: s.Payload, QoS: s.QoS, TTL: time.Duration(s.TTL) * time.Millisecond,
		Receipt: !s.NoReceipt, CollapseKey: s.CollapseKey, Priority: store.Priority(s.Priority)}
	if s.DeliverAt != 0 {
		m.DeliverAt = time.UnixMilli(s.DeliverAt)
	}
	return m
}

// JobID is the id of the job of a group send whose message id is base: a retry of the
// request finds the job it made.
func JobID(base string) string {
	h := sha256.Sum256([]byte("job\x00" + base))
	return "j" + hex.EncodeToString(h[:12])
}

func viewOf(j store.Job, now time.Time) JobView {
	var spec jobSpec
	_ = json.Unmarshal(j.Spec, &spec) // a view shows what it can
	v := JobView{Job: j.ID, ID: spec.ID, Group: j.Group, State: j.State, Total: j.Total, Sent: j.Counts.Sum(),
		JobCounts: j.Counts, Error: j.Error, Created: j.Created, Updated: j.Updated, Ended: j.Ended, Claims: j.Claims}
	end := now
	if !j.Ended.IsZero() {
		end = j.Ended
	}
	if !j.Created.IsZero() {
		v.Elapsed = end.Sub(j.Created).Seconds()
	}
	return v
}

// createJob stores a job for a group send and wakes this router's runner.
func (r *Router) createJob(ctx context.Context, group string, size int, t Message, base string, wait time.Duration) (JobView, bool, error) {
	js, ok := r.store.(store.Jobs)
	if !ok || r.jobs == nil {
		return JobView{}, false, errors.New("this store keeps no jobs")
	}
	spec, err := json.Marshal(jobSpec{ID: base, Topic: t.Topic, Payload: t.Payload, QoS: t.QoS,
		TTL: t.TTL.Milliseconds(), MaxWait: wait.Milliseconds(), NoReceipt: !t.Receipt, CollapseKey: t.CollapseKey,
		DeliverAt: deliverAtMillis(t.DeliverAt), Priority: uint8(t.Priority)})
	if err != nil {
		return JobView{}, false, fmt.Errorf("encode job: %w", err)
	}
	now := time.Now().Add(r.cfg.ClockSkew)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
	defer cancel()
	j, created, err := js.CreateJob(ctx, store.Job{ID: JobID(base), Group: group, Spec: spec, Total: size, Created: now})
	if err != nil {
		return JobView{}, false, err
	}
	if created {
		r.log.Info("fan-out job created", "job", j.ID, "group", group, "total", size)
	}
	select {
	case r.jobs.wake <- struct{}{}:
	default:
	}
	return viewOf(j, now), created, nil
}

func (r *Router) handleJob(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	if id == "" || len(id) > 128 || strings.IndexFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		r.badRequest(w, fieldError{"id", fmt.Sprintf("%.140q is not a job id", id)}, nil)
		return
	}
	js, ok := r.store.(store.Jobs)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, ErrorBody{Error: "this store keeps no jobs"})
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.StoreTimeout)
	defer cancel()
	j, err := js.Job(ctx, id)
	switch {
	case errors.Is(err, store.ErrNoJob):
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: err.Error(), Field: "id"})
	case err != nil:
		code, msg := storeError(err)
		writeJSON(w, code, ErrorBody{Error: "read job: " + msg})
	default:
		writeJSON(w, http.StatusOK, viewOf(j, time.Now().Add(r.cfg.ClockSkew)))
	}
}

// jobRunner is a router's part in running jobs: it claims one job at a time and runs it.
type jobRunner struct {
	jobs   store.Jobs
	groups store.Groups
	owner  string        // this router, in the jobs' leases
	wake   chan struct{} // a job was created here: look for one now
}

// startJobs starts the runner if the store keeps jobs and groups. It stops with ctx; the
// router's wait group waits for it.
func (r *Router) startJobs(ctx context.Context) {
	js, ok := r.store.(store.Jobs)
	gs, ok2 := r.store.(store.Groups)
	if !ok || !ok2 {
		return
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	r.jobs = &jobRunner{jobs: js, groups: gs, owner: "router-" + hex.EncodeToString(b[:]), wake: make(chan struct{}, 1)}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.runJobs(ctx)
	}()
}

// runJobs claims and runs jobs until ctx ends.
func (r *Router) runJobs(ctx context.Context) {
	f := r.cfg.Fanout
	tick := time.NewTicker(f.JobPoll)
	defer tick.Stop()
	failures := repeating{what: "claim a fan-out job"}
	for {
		// Bounded: a router runs at most this many jobs back to back before it looks
		// at the clock again.
		for range 100 {
			cctx, cancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
			j, ok, err := r.jobs.jobs.ClaimJob(cctx, r.jobs.owner, f.JobLease)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					failures.fail(r.log, err)
				}
				break
			}
			failures.ok(r.log)
			if !ok {
				break
			}
			r.runJob(ctx, j)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-r.jobs.wake:
		}
	}
}

// maxJobPages bounds one run of a job: a group of a billion members at the largest page.
const maxJobPages = 1 << 20

// runJob runs a job this router claimed until it ends, its lease is lost, the store stays
// unavailable too long, or ctx ends; in all but the first the job is left to a later claim.
func (r *Router) runJob(ctx context.Context, j store.Job) {
	log := r.log.With("job", j.ID, "group", j.Group)
	if j.Claims > 1 {
		log.Info("resuming fan-out job", "cursor", j.Cursor, "claims", j.Claims, "sent", j.Counts.Sum())
	} else {
		log.Info("running fan-out job", "total", j.Total)
	}
	var spec jobSpec
	if err := json.Unmarshal(j.Spec, &spec); err != nil || spec.ID == "" || spec.TTL <= 0 {
		r.advance(ctx, log, j.ID, store.JobProgress{Cursor: j.Cursor, State: store.JobFailed,
			Error: fmt.Sprintf("unreadable job spec: %v", err)})
		return
	}
	cursor := j.Cursor
	defer func() {
		if ctx.Err() == nil {
			return
		}
		// The router is closing: let the job go now, at the cursor recorded last (a
		// renewal to a lease of 1ms changes nothing else), so that another router (or
		// this one restarted) need not wait out the lease.
		rctx, cancel := context.WithTimeout(context.Background(), r.cfg.StoreTimeout)
		defer cancel()
		err := r.jobs.jobs.AdvanceJob(rctx, j.ID, r.jobs.owner, store.JobProgress{Renew: true}, time.Millisecond)
		log.Info("fan-out job released at close", "cursor", cursor, "error", err)
	}()
	for range maxJobPages {
		var members []string
		err := r.retry(ctx, func(ctx context.Context) error {
			var err error
			members, _, err = r.jobs.groups.GroupMembers(ctx, j.Group, cursor, r.cfg.Fanout.JobPage)
			return err
		})
		if err != nil {
			log.Warn("fan-out job: read the group; leaving the job for a later claim", "error", err)
			return
		}
		p := store.JobProgress{Cursor: cursor, State: store.JobDone}
		if len(members) > 0 {
			counts, err := r.sendJobPage(ctx, j.ID, spec, members)
			if err != nil {
				log.Warn("fan-out job: page not sent; leaving the job for a later claim", "cursor", cursor, "error", err)
				return
			}
			p = store.JobProgress{Cursor: members[len(members)-1], Add: counts, State: store.JobRunning}
		}
		if !r.advance(ctx, log, j.ID, p) {
			return
		}
		if p.State == store.JobDone {
			log.Info("fan-out job done")
			return
		}
		cursor = p.Cursor
	}
}

// advance records a job's progress, retrying while the store is unavailable; false when
// it could not (the lease was lost, or ctx ended).
func (r *Router) advance(ctx context.Context, log *slog.Logger, id string, p store.JobProgress) bool {
	p.At = time.Now().Add(r.cfg.ClockSkew)
	err := r.retry(ctx, func(ctx context.Context) error {
		return r.jobs.jobs.AdvanceJob(ctx, id, r.jobs.owner, p, r.cfg.Fanout.JobLease)
	})
	if err != nil {
		log.Warn("fan-out job: record progress; leaving the job", "cursor", p.Cursor, "error", err)
		return false
	}
	return true
}

// sendJobPage sends the message to one page of members, renewing the job's lease while it
// does, and counts the outcomes. Failures worth retrying (the store unavailable: its 503)
// are retried with back-off, with the same message ids; an error means the page was not
// completely sent (and must be sent again by whoever resumes the job).
func (r *Router) sendJobPage(ctx context.Context, id string, spec jobSpec, members []string) (store.JobCounts, error) {
	msgs, err := r.cfg.forRecipients(spec.message(), spec.ID, members)
	if err != nil {
		return store.JobCounts{}, err
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var lost error
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The lease, renewed at a third of its length; stopped (and waited for) before
		// the page's progress is recorded.
		tick := time.NewTicker(r.cfg.Fanout.JobLease / 3)
		defer tick.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
			}
			cctx, ccancel := context.WithTimeout(pctx, r.cfg.StoreTimeout)
			err := r.jobs.jobs.AdvanceJob(cctx, id, r.jobs.owner, store.JobProgress{Renew: true}, r.cfg.Fanout.JobLease)
			ccancel()
			if errors.Is(err, store.ErrNotOwner) {
				lost = err
				cancel()
				return
			}
		}
	}()
	var counts store.JobCounts
	pending := msgs
	wait := time.Duration(spec.MaxWait) * time.Millisecond
	pause := 100 * time.Millisecond
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == maxPageAttempts || pctx.Err() != nil {
			break
		}
		if attempt > 0 {
			select {
			case <-time.After(pause):
			case <-pctx.Done():
			}
			pause = min(2*pause, 5*time.Second)
		}
		var again []Message
		items := r.fanOut(pctx, pending, wait)
		for i, it := range items {
			switch {
			case it.Error == "":
				switch {
				case it.Status == Delivered:
					counts.Delivered++
				case it.Status == Expired:
					counts.Expired++
				case it.Duplicate:
					counts.Duplicates++
				default:
					counts.Queued++
				}
			case it.Code == http.StatusServiceUnavailable:
				again = append(again, pending[i])
			default:
				counts.Failed++
			}
		}
		if len(again) > 0 {
			r.log.Debug("fan-out job: store busy or unavailable; retrying", "job", id, "messages", len(again), "attempt", attempt+1)
		}
		pending = again
	}
	cancel()
	wg.Wait()
	switch {
	case lost != nil:
		return counts, fmt.Errorf("job %s: lease lost: %w", id, lost)
	case len(pending) > 0:
		return counts, fmt.Errorf("job %s: %d messages not accepted after %d attempts", id, len(pending), maxPageAttempts)
	}
	return counts, nil
}

// maxPageAttempts bounds the sends of one page (about five minutes at the largest pause).
const maxPageAttempts = 64

// retry runs a store call until it succeeds, with back-off, a bounded number of times;
// a lost lease (store.ErrNotOwner) and ctx's end are not retried.
func (r *Router) retry(ctx context.Context, call func(context.Context) error) error {
	pause := 100 * time.Millisecond
	var err error
	for range 20 {
		cctx, cancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
		err = call(cctx)
		cancel()
		if err == nil || errors.Is(err, store.ErrNotOwner) || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err()
		}
		pause = min(2*pause, 5*time.Second)
	}
	return err
}

func deliverAtMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
