package node

import (
	"context"
	"errors"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// auditRate caps the presence look-ups of an audit, so that a node with many clients
// spreads its pass over more than AuditInterval rather than loading the store.
const auditRate = 2000 // per second

// auditLoop checks, every AuditInterval, that each connected client's presence in the
// store still names its session. Every path that changes a presence keeps it right on its
// own; this loop is what puts it right when one of them was cut short by a fault it could
// not see (a write whose answers were all lost, a takeover recorded past MaxPending). It
// acts as Reassert does after a new epoch: a presence that is gone is recorded again and
// the mailbox read (a message queued meanwhile went in unseen), one that another session
// owns ends this one, and a mailbox that holds messages is read.
func (n *Node) auditLoop(ctx context.Context) {
	if n.cfg.AuditInterval <= 0 {
		return
	}
	t := time.NewTicker(n.cfg.AuditInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		n.auditPass(ctx)
	}
}

func (n *Node) auditPass(ctx context.Context) {
	pace := time.NewTicker(time.Second / auditRate)
	defer pace.Stop()
	for _, st := range n.clients.all() {
		select {
		case <-pace.C:
		case <-ctx.Done():
			return
		}
		n.audit(ctx, st)
	}
}

// audit checks one client's presence; see auditLoop.
func (n *Node) audit(ctx context.Context, st *clientState) {
	epoch := n.epoch.Load()
	if epoch == 0 || st.epoch.Load() != epoch || !st.connected.Load() || st.revoked.Load() {
		return // not sending under the live epoch: a reassertion or the CONNECT is under way
	}
	sctx, cancel := context.WithTimeout(ctx, n.cfg.StoreTimeout)
	defer cancel()
	p, depth, err := n.store.Lookup(sctx, st.id)
	if err != nil {
		n.log.Debug("presence audit: look-up failed", "client", st.id, "error", err)
		return
	}
	switch {
	case p.Session == st.session:
		if depth > 0 {
			n.askMailbox(st)
		}
		return
	case p.Online():
		// A later session owns the presence. Its CONNECT takes this one over; if that
		// word was lost, this is where the session learns it.
		if st.revoked.Load() || n.epoch.Load() != epoch {
			return
		}
		n.metrics.auditFixes.WithLabelValues("taken_over").Inc()
		n.revokeState(st, "audit")
		return
	}
	if n.epoch.Load() != epoch {
		return
	}
	err = n.reassert(ctx, st, epoch)
	switch {
	case errors.Is(err, errGone):
	case errors.Is(err, store.ErrNotOwner):
		n.metrics.auditFixes.WithLabelValues("taken_over").Inc()
		n.revokeState(st, "audit")
	case err != nil:
		n.log.Debug("presence audit: reassert failed", "client", st.id, "error", err)
	default:
		n.log.Warn("presence audit: the store had lost this session's presence; recorded it again", "client", st.id)
		n.metrics.auditFixes.WithLabelValues("recorded_again").Inc()
		n.askMailbox(st)
	}
}
