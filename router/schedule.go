package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// Three kinds of message leave the direct path:
//
//   - A high-priority message goes through the mailbox's high lane (store.Priorities),
//     which the client's node reads before the normal lane: queued high-priority messages
//     are written before queued normal ones, and in their own order. (A direct send would
//     wait behind the client's queued normal messages.) Normal messages of the same
//     request keep their own path and order.
//
//   - A message with a collapse key goes through the mailbox, where it replaces the
//     client's queued message with the same key; its node is told and reads it from
//     there (a mailbox read, not a frame of its own: a few milliseconds more). So that
//     the client's messages of one request keep their order, all of that client's
//     messages in the request go through the mailbox with it.
//   - A message whose deliver_at is ahead waits in the store's schedule (store.Schedule),
//     registered for its receipt; every router polls the schedule and queues what has
//     come due, in due order, with the rest of its TTL. Its place among the client's
//     messages is its deliver_at: those accepted before it come first, those accepted
//     after it come after it, within a poll (SchedulePoll).

// ErrUnsupported means the store cannot do what the message asks (a deliver_at on a store
// without a schedule).
var ErrUnsupported = errors.New("not supported by this store")

// pathsOf splits a Route's messages: groups to try directly, indexes to queue at once
// (collapse keys), indexes to schedule (deliver_at ahead of wall).
func (r *Router) pathsOf(msgs []Message, sms []store.Message, wall time.Time) (direct []group, queue, later []int) {
	if !slices.ContainsFunc(msgs, func(m Message) bool {
		return !m.DeliverAt.IsZero() || m.Priority == store.PriorityHigh || m.CollapseKey != ""
	}) {
		return groupByClient(sms), nil, nil // the common case, without the copies below
	}
	var viaBox map[string]bool
	now := make([]int, 0, len(msgs))
	for i, m := range msgs {
		switch {
		case !m.DeliverAt.IsZero() && m.DeliverAt.After(wall):
			later = append(later, i)
		case m.Priority == store.PriorityHigh:
			queue = append(queue, i)
		default:
			if m.CollapseKey != "" {
				if viaBox == nil {
					viaBox = map[string]bool{}
				}
				viaBox[m.To] = true
			}
			now = append(now, i)
		}
	}
	for _, g := range regroup(now, sms) {
		if viaBox[g.client] {
			queue = append(queue, g.idx...)
		} else {
			direct = append(direct, g)
		}
	}
	return direct, queue, later
}

// scheduleAll stores the messages at idx in the schedule.
func (r *Router) scheduleAll(ctx context.Context, idx []int, msgs []Message, sms []store.Message, out []Routed, wall, start time.Time) {
	sc, ok := r.store.(store.Schedule)
	if !ok {
		for _, i := range idx {
			out[i].Err = fmt.Errorf("deliver_at: %w", ErrUnsupported)
		}
		return
	}
	batch := make([]store.Scheduled, len(idx))
	for k, i := range idx {
		m := sms[i]
		m.TTL -= time.Since(start)
		batch[k] = store.Scheduled{Message: m, Delay: msgs[i].DeliverAt.Sub(wall) - time.Since(start)}
		if batch[k].Delay <= 0 {
			batch[k].Delay = time.Millisecond // due at once: the next poll queues it
		}
	}
	sctx, cancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
	defer cancel()
	dup, err := sc.ScheduleMessages(sctx, batch)
	for k, i := range idx {
		switch {
		case err != nil:
			out[i].Err = fmt.Errorf("schedule for %s: %w", sms[i].To, err)
		default:
			out[i].Result = Result{ID: sms[i].ID, Status: Scheduled, Duplicate: dup[k], DeliverAt: msgs[i].DeliverAt.UTC()}
		}
	}
}

// startSchedule starts the poller of the schedule, when the store keeps one.
func (r *Router) startSchedule(ctx context.Context) {
	sc, ok := r.store.(store.Schedule)
	if !ok {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		failures := repeating{what: "queue scheduled messages that came due"}
		every(ctx, r.cfg.SchedulePoll, func() {
			for range 100 { // bounded: a backlog does not keep the loop from ctx
				n, err := r.queueDue(ctx, sc)
				switch {
				case err != nil && ctx.Err() == nil:
					failures.fail(r.log, err)
				case err == nil:
					failures.ok(r.log)
				}
				if err != nil || n < store.MaxScheduledTake {
					return
				}
			}
		})
	}()
}

// queueDue takes due messages, queues them (telling the nodes of connected clients), and
// forgets those queued or refused for good. A message whose queueing failed for now stays
// leased and comes back when the lease ends.
func (r *Router) queueDue(ctx context.Context, sc store.Schedule) (int, error) {
	tctx, cancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
	due, err := sc.TakeDue(tctx, store.MaxScheduledTake, r.cfg.ScheduleLease)
	cancel()
	if err != nil || len(due) == 0 {
		return 0, err
	}
	qctx, cancel := context.WithTimeout(ctx, 2*r.cfg.StoreTimeout)
	defer cancel()
	res, err := r.teller.Queue(qctx, "", due)
	if err != nil && res == nil {
		return len(due), fmt.Errorf("queue %d due messages: %w", len(due), err)
	}
	// When only telling a node failed, the messages are in their mailboxes all the same
	// (their nodes read them at the next notice or audit): forget those, or they would be
	// queued again after the lease.
	tellErr := err
	var done []string
	var refused []store.Receipt
	refusedKey := map[string]bool{}
	for i, m := range due {
		switch err := res[i].Err; {
		case err == nil:
		case errors.Is(err, store.ErrMailboxFull), errors.Is(err, store.ErrTooManyCollapseKeys):
			refusedKey[store.MessageKey(m.To, m.ID)] = true
			refused = append(refused, store.Receipt{Client: m.To, ID: m.ID, Status: store.ReceiptRejected,
				Detail: clip("came due but was refused: "+err.Error(), store.MaxReceiptDetail), OnlyPending: true})
		default:
			continue // the store could not take it now: after the lease
		}
		done = append(done, store.MessageKey(m.To, m.ID))
	}
	if len(refused) > 0 && r.receipts != nil {
		if err := r.receipts.Finish(qctx, refused...); err != nil {
			// Those stay leased (and come back); the queued ones are forgotten below.
			done = slices.DeleteFunc(done, func(k string) bool { return refusedKey[k] })
			r.log.Warn("record the receipts of refused due messages; retrying after their lease", "messages", len(refused), "error", err)
		}
	}
	r.metrics.scheduledQueued.Add(float64(len(done)))
	if err := sc.DoneScheduled(qctx, done...); err != nil {
		return len(due), fmt.Errorf("forget queued scheduled messages: %w", err)
	}
	if tellErr != nil {
		return len(due), fmt.Errorf("tell the nodes of %d due messages queued: %w", len(done), tellErr)
	}
	return len(due), nil
}
