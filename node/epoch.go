package node

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/lease"
	"github.com/switchboard-mqtt/switchboard/store"
)

// reassertAll records the node's new epoch in every connected client's presence, and has
// each read its mailbox: what was queued while the node was not live. A client whose
// presence another session owns now was taken over while the node was cut off: it is
// revoked. Nothing is sent to a client before its presence is confirmed under the new
// epoch; one that cannot be confirmed now is tried again every second while the epoch
// lasts.
func (n *Node) reassertAll(ctx context.Context, epoch int64) {
	todo := n.clients.all()
	for len(todo) > 0 {
		var again, confirmed []*clientState
		for _, st := range todo {
			if n.epoch.Load() != epoch {
				return // superseded by a newer epoch's reassertion
			}
			if !st.connected.Load() || st.revoked.Load() {
				continue // its OnConnect is still writing presence and sees the new epoch; or it is ending
			}
			if st.epoch.Load() >= epoch {
				continue // confirmed under it already (by its OnConnect, or a pass cut short)
			}
			err := n.reassert(ctx, st, epoch)
			switch {
			case errors.Is(err, store.ErrNotOwner):
				n.revokeState(st, "reassert")
			case errors.Is(err, errGone):
			case err != nil:
				n.log.Warn("reassert presence; retrying", "client", st.id, "error", err)
				again = append(again, st)
			default:
				confirmed = append(confirmed, st)
			}
		}
		if len(confirmed) > 0 {
			// A session taken over while this node's epoch was out of the live set may
			// have been given up by its successor since, so its presence was free to
			// reassert; the revocation the successor stored for this node is what says
			// so. Act on every notice stored before the reassertions first.
			if err := n.awaitNotices(ctx, time.Now()); err != nil {
				n.log.Warn("reassert presence: notices not taken; retrying", "error", err)
				again = append(again, confirmed...)
				confirmed = nil
			}
		}
		for _, st := range confirmed {
			if st.revoked.Load() {
				continue
			}
			// Ask for the mailbox read first: the sender may write as soon as the epoch
			// is confirmed, and must not write anything direct before that read.
			n.askMailbox(st)
			raiseEpoch(st, epoch)
			n.wake(st)
		}
		if len(again) == 0 {
			return
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return
		}
		todo = again
	}
}

// reassert records st's presence again under epoch (store.Reassert). A connection that
// ended meanwhile may have cleared its presence before the reassertion wrote it: that
// presence, naming a session no node has, is taken back.
func (n *Node) reassert(ctx context.Context, st *clientState, epoch int64) error {
	sctx, cancel := context.WithTimeout(ctx, n.cfg.StoreTimeout)
	defer cancel()
	err := n.store.Reassert(sctx, store.Presence{
		Client: st.id, Node: n.cfg.ID, Epoch: epoch, Session: st.session,
		Since: time.Now().Add(n.cfg.ClockSkew).UTC(),
	})
	if err == nil && !st.connected.Load() {
		// forget cleared connected before its Disconnect; if that came before our write,
		// the presence is ours to clear (compare-and-delete: only if it still names st).
		if _, err := n.store.Disconnect(sctx, st.id, st.session); err != nil {
			n.log.Warn("clear presence reasserted for an ended connection", "client", st.id, "error", err)
		}
		return errGone
	}
	return err
}

// errGone: the connection ended.
var errGone = errors.New("connection ended")

// awaitNotices waits, bounded by the lease's duration, for a round of the delivery lease
// that began after t: every notice stored before t has been acted on.
func (n *Node) awaitNotices(ctx context.Context, t time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 2*n.lease.Duration())
	defer cancel()
	return n.lease.AwaitRound(ctx, t)
}

// raiseEpoch records that st's presence is confirmed under epoch, unless a newer epoch's
// reassertion got there first: a session's epoch only goes up.
func raiseEpoch(st *clientState, epoch int64) {
	for {
		cur := st.epoch.Load()
		if cur >= epoch || st.epoch.CompareAndSwap(cur, epoch) {
			return
		}
	}
}

// tellBudget bounds a call that may have to tell another node through the store and wait
// out its lease: two store calls and the longest lease in the live set.
func (n *Node) tellBudget() time.Duration {
	return 2*n.cfg.StoreTimeout + lease.MaxTellWait(n.members.Members())
}

// leaseLoop wakes every client's sender each time the delivery lease comes back after a
// lapse (senders stop while it is lapsed), and once when it starts: a sender may have
// stopped before the first renewal, which can come before this loop runs.
func (n *Node) leaseLoop(ctx context.Context) {
	n.lease.Renewals(ctx, func() {
		for _, st := range n.clients.all() {
			n.wake(st)
		}
	})
}

// mover moves every client off the node at a bounded rate while its context lasts.
type mover struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// begin starts moving clients off, unless that is under way.
func (m *mover) begin(ctx context.Context, n *Node, why string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil {
		return
	}
	mctx, cancel := context.WithCancel(ctx)
	m.cancel, m.done = cancel, make(chan struct{})
	done := m.done
	n.log.Warn("moving clients off", "why", why, "clients", n.clients.len(), "rate_per_second", n.cfg.Quarantine.MoveRate)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(done)
		n.moveAllOff(mctx)
	}()
}

// stop ends a move under way and waits for it. Idempotent.
func (m *mover) stop() {
	m.mu.Lock()
	cancel, done := m.cancel, m.done
	m.cancel, m.done = nil, nil
	m.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// moveAllOff disconnects the clients one by one at the quarantine move rate.
func (n *Node) moveAllOff(ctx context.Context) {
	tick := time.NewTicker(time.Second / time.Duration(n.cfg.Quarantine.MoveRate))
	defer tick.Stop()
	for _, st := range n.clients.all() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		n.moveOff(st)
	}
}
