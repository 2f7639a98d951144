package node

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// armSpill sets the outbox's timer to its earliest unanswered deadline. o.mu is held.
func (n *Node) armSpill(st *clientState) {
	o := st.ob
	var next time.Time
	keep := o.waiting[:0]
	for _, e := range o.waiting {
		if e.reply == nil {
			continue // answered: drop it from the list
		}
		keep = append(keep, e)
		if !e.spilling && (next.IsZero() || e.answerBy.Before(next)) {
			next = e.answerBy
		}
	}
	clear(o.waiting[len(keep):])
	o.waiting = keep
	if next.IsZero() || o.closed {
		return
	}
	d := time.Until(next)
	if o.timer == nil {
		o.timer = time.AfterFunc(d, func() { n.spillDue(st) })
		return
	}
	o.timer.Reset(d)
}

// spillDue spills the unanswered direct messages whose deadline has passed, with every
// unanswered one before them, so the mailbox gets them in the outbox's order.
func (n *Node) spillDue(st *clientState) {
	o := st.ob
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	now := time.Now()
	last := -1
	for i, e := range o.waiting {
		if e.reply != nil && !e.spilling && !now.Before(e.answerBy) {
			last = i
		}
	}
	var batch []*entry
	for _, e := range o.waiting[:last+1] {
		if e.reply != nil && !e.spilling {
			e.spilling = true
			batch = append(batch, e)
		}
	}
	n.armSpill(st)
	o.mu.Unlock()
	if len(batch) > 0 {
		n.spill(st, batch, "not acknowledged within the max wait; queued in the mailbox")
	}
}

// closeOutbox ends a connection's outbox: nothing more is written, and every direct
// message not answered yet is spilled to the mailbox (it may have reached the client; a
// copy in the mailbox costs a duplicate at worst, never a loss).
func (n *Node) closeOutbox(st *clientState) {
	o := st.ob
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	if o.timer != nil {
		o.timer.Stop()
	}
	var batch []*entry
	for _, e := range o.waiting {
		if e.reply != nil && !e.spilling {
			e.spilling = true
			batch = append(batch, e)
		}
	}
	o.mu.Unlock()
	if len(batch) > 0 {
		n.spillBatch(st, batch, "the client's connection ended before it acknowledged; queued in the mailbox", true)
	}
}

// spill stores batch (marked spilling, in order) in the client's mailbox in the
// background, telling the client's node if it is connected elsewhere by now, and then
// answers each message queued, or failed if it could not be stored (the router then
// queues it itself). A message that expired is answered expired — unless it is in flight
// on a connection that goes on (closing false): its PUBACK may still come and settle it.
// A stored message not written yet leaves memory: the mailbox holds it, and the outbox
// reads it back in its place before it writes anything direct again.
func (n *Node) spill(st *clientState, batch []*entry, why string) {
	n.spillBatch(st, batch, why, false)
}

func (n *Node) spillBatch(st *clientState, batch []*entry, why string, closing bool) {
	n.sendWG.Add(1)
	go func() {
		defer n.sendWG.Done()
		now := time.Now()
		wall := now.Add(n.cfg.ClockSkew).UTC()
		var msgs []store.Message
		var stored []*entry
		var rs replies
		var gone []string
		o := st.ob
		o.mu.Lock()
		for _, e := range batch {
			left := e.expires.Sub(now)
			if left <= 0 {
				e.spilling = false
				if e.state == entryWritten && !closing {
					continue // in flight: its PUBACK settles it
				}
				if e.state == entryQueued {
					e.state = entryFinished
				}
				n.end(o, e, wire.StatusExpired, "expired before delivery", &rs, &gone)
				continue
			}
			msgs = append(msgs, store.Message{
				ID: e.id, To: st.id, Topic: e.topic, Payload: e.payload, QoS: e.qos,
				Accepted: wall, TTL: left, Receipt: e.receipt,
			})
			stored = append(stored, e)
		}
		o.mu.Unlock()
		rs.run()
		n.remove(st, gone)
		gone = nil
		if len(msgs) == 0 {
			return
		}
		// Long enough for the store call and, if the client's node cannot be told directly,
		// for that node's lease to run out.
		ctx, cancel := context.WithTimeout(context.Background(), n.tellBudget())
		res, err := n.teller.Queue(ctx, st.session, msgs)
		cancel()
		if err != nil {
			n.log.Warn("could not queue unacknowledged messages; their routers will", "client", st.id,
				"messages", len(msgs), "error", err)
		}
		rs = rs[:0]
		dropped := false
		o.mu.Lock()
		for i, e := range stored {
			e.spilling = false
			if err != nil || res[i].Err != nil {
				// Answered failed, the router stores its own copy: remove that copy if the
				// client acknowledges this one after all.
				e.inBox = true
				rs.add(n.settle(o, e, wire.StatusFailed, "could not be queued"))
				switch {
				case e.state == entryQueued && !e.inBoxQ:
					// The router queues it; the outbox reads it back from the mailbox.
					e.state = entryDropped
					if o.byID[e.id] == e {
						delete(o.byID, e.id)
					}
				case e.state == entryFinished:
					n.dropCopy(o, e, &gone) // acknowledged meanwhile: the router's copy must go
				}
				// In boxQ (a mailbox read met its copy: the store did write it, only the
				// answer was lost) it stays and is written in its place.
				continue
			}
			e.inBox = true
			if e.seq == 0 {
				e.seq = res[i].Seq
			}
			if f := n.settle(o, e, wire.StatusQueued, why); f.fn != nil {
				n.metrics.countDelivery("direct", wire.StatusQueued)
				rs.add(f)
			}
			switch {
			case e.state == entryFinished:
				n.dropCopy(o, e, &gone) // acknowledged while its copy was being stored
			case e.state == entryQueued && !e.inBoxQ:
				// Not written yet and not met in the mailbox: it waits there, not here. No
				// mailbox read has passed its seq (one that had would have moved it to
				// boxQ), so the next read brings it back in its place.
				e.state = entryDropped
				if o.byID[e.id] == e {
					delete(o.byID, e.id)
				}
				dropped = true
			}
		}
		if dropped {
			o.askGen++ // nothing direct is written before the mailbox has been read again
			o.directQ = slices.DeleteFunc(o.directQ, func(e *entry) bool { return e.state == entryDropped })
		}
		if !o.closed {
			n.armSpill(st)
		}
		o.mu.Unlock()
		rs.run()
		n.remove(st, gone)
		if dropped {
			n.wake(st)
		}
	}()
}

// remover deletes the mailbox copies of acknowledged messages, many clients' at a time.
type remover struct {
	mu      sync.Mutex
	queue   map[*clientState][]string
	signal  chan struct{}
	stopped chan struct{}
}

func newRemover() *remover {
	return &remover{queue: map[*clientState][]string{}, signal: make(chan struct{}, 1), stopped: make(chan struct{})}
}

// remove queues ids of st's mailbox for deletion.
func (n *Node) remove(st *clientState, ids []string) {
	if len(ids) == 0 {
		return
	}
	r := n.remover
	r.mu.Lock()
	r.queue[st] = append(r.queue[st], ids...)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// removeLoop runs the remover until ctx ends, then makes one last pass.
func (n *Node) removeLoop(ctx context.Context) {
	r := n.remover
	defer close(r.stopped)
	for {
		select {
		case <-r.signal:
		case <-ctx.Done():
			// The receipter's last pass may queue removals still.
			<-n.receipter.stopped
			n.removePass(context.Background())
			return
		}
		n.removePass(ctx)
	}
}

func (n *Node) removePass(ctx context.Context) {
	r := n.remover
	r.mu.Lock()
	work := r.queue
	r.queue = map[*clientState][]string{}
	r.mu.Unlock()
	if len(work) == 0 {
		return
	}
	items := make([]store.Removal, 0, len(work))
	for st, ids := range work {
		items = append(items, store.Removal{Client: st.id, IDs: ids})
	}
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		sctx, cancel := context.WithTimeout(context.Background(), n.cfg.StoreTimeout)
		err = n.store.Remove(sctx, items...)
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		// The copies stay, and so does the connection's memory of them (an entry each,
		// bounded by the outbox's cap), so it does not send them again. They are tried
		// again a second later while the node runs; a copy left when it stops is sent
		// again on the client's next connection (a duplicate, never a loss).
		n.log.Warn("remove acknowledged messages from mailboxes; retrying", "clients", len(items), "error", err)
		n.metrics.removeFailures.Inc()
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		for st, ids := range work {
			r.queue[st] = append(ids, r.queue[st]...)
		}
		r.mu.Unlock()
		time.AfterFunc(time.Second, func() {
			select {
			case r.signal <- struct{}{}:
			default:
			}
		})
		return
	}
	for st, ids := range work {
		n.removed(st, ids)
	}
}
