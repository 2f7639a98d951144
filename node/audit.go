package node

import (
	"context"
	"errors"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/switchboard-mqtt/switchboard/store"
)

// auditRate caps the presence look-ups of an audit, so that a node with many clients
// spreads its pass over more than AuditInterval rather than loading the store. They go
// auditLookups at a time.
const auditRate = 2000 // per second

// auditLoop checks, every AuditInterval, that each connected client's presence in the
// store still names its session, and then looks up the client of each offline session
// (see auditOffline). Every path that changes a presence keeps it right on its own; this
// loop is what puts it right when one of them was cut short by a fault it could not see
// (a write whose answers were all lost, a takeover recorded past MaxPending). It acts as
// Reassert does after a new epoch: a presence that is gone is recorded again and the
// mailbox read (a message queued meanwhile went in unseen), one that another session owns
// ends this one, and a mailbox that holds messages is read.
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

// auditLookups is how many clients' presences an audit looks up in one store call: one
// round trip on Redis instead of one each (the round trips were most of an idle node's
// CPU), and small enough that the reads of one batch do not hold up other clients' calls.
const auditLookups = 100

func (n *Node) auditPass(ctx context.Context) {
	pace := time.NewTicker(time.Second * auditLookups / auditRate)
	defer pace.Stop()
	if paced(ctx, pace, n.clients.all(), func(b []*clientState) { n.auditBatch(ctx, b) }) {
		seen := map[*mqtt.Client]elsewhere{}
		paced(ctx, pace, n.offlineSessions(), func(b []*mqtt.Client) { n.auditOffline(ctx, b, seen) })
		n.offlineSeen = seen
	}
}

// paced calls f with items auditLookups at a time, each batch after a tick of pace, and
// reports whether it got through them before ctx ended.
func paced[T any](ctx context.Context, pace *time.Ticker, items []T, f func([]T)) bool {
	for len(items) > 0 {
		select {
		case <-pace.C:
		case <-ctx.Done():
			return false
		}
		k := min(auditLookups, len(items))
		f(items[:k])
		items = items[k:]
	}
	return true
}

// elsewhere is a session of a client on another node, as its presence names it.
type elsewhere struct {
	node    string
	epoch   int64
	session string
}

// offlineSessions returns the sessions mochi keeps for clients whose connection ended
// (with a session expiry), which the client table no longer holds.
func (n *Node) offlineSessions() []*mqtt.Client {
	var out []*mqtt.Client
	for _, cl := range n.mqtt.Clients.GetAll() {
		if cl.Closed() && !cl.Net.Inline && n.clients.byClient(cl) == nil {
			out = append(out, cl)
		}
	}
	return out
}

// auditOffline discards each of the offline sessions whose client the last pass and this
// one found connected in the same session on another node, and records in seen those this
// pass finds so for the first time. Nothing tells this node of a CONNECT elsewhere when its
// own connection of the client had ended already (a takeover revokes connected sessions
// only), so the session went on queueing the messages of its subscriptions until it
// expired, and a CONNECT back here resumed it, against [MQTT-3.1.2-4] for a Clean Start
// elsewhere in between. A presence found elsewhere is newer than this session (whose
// Connect replaced what was recorded before, and whose Disconnect cleared only itself),
// with one exception that two passes rule out: a node registered again may reassert a
// session that was taken over while it was cut off, for the moment until it acts on that
// takeover's revocation (at most two lease durations).
func (n *Node) auditOffline(ctx context.Context, batch []*mqtt.Client, seen map[*mqtt.Client]elsewhere) {
	ids := make([]string, len(batch))
	for i, cl := range batch {
		ids[i] = cl.ID
	}
	sctx, cancel := context.WithTimeout(ctx, n.cfg.StoreTimeout)
	res := n.store.LookupAll(sctx, ids)
	cancel()
	for i, cl := range batch {
		p, err := res[i].Presence, res[i].Err
		if err != nil {
			n.log.Debug("offline session audit: look-up failed", "client", cl.ID, "error", err)
			continue
		}
		if !p.Online() || p.Node == n.cfg.ID {
			continue // offline still, or connected here again (a newer mochi client)
		}
		if at := (elsewhere{p.Node, p.Epoch, p.Session}); n.offlineSeen[cl] != at {
			seen[cl] = at // the next pass decides
			continue
		}
		if !n.discardSession(cl) {
			continue
		}
		n.metrics.auditFixes.WithLabelValues("offline_discarded").Inc()
		n.log.Info("offline session discarded: the client is connected on another node", "client", cl.ID, "node", p.Node)
	}
}

// auditBatch looks up the presences of batch, those under the live epoch, in one store
// call, and acts on each; see auditLoop.
func (n *Node) auditBatch(ctx context.Context, batch []*clientState) {
	epoch := n.epoch.Load()
	if epoch == 0 {
		return
	}
	var sts []*clientState
	var ids []string
	for _, st := range batch {
		if st.epoch.Load() != epoch || !st.connected.Load() || st.revoked.Load() {
			continue // not sending under the live epoch: a reassertion or the CONNECT is under way
		}
		sts, ids = append(sts, st), append(ids, st.id)
	}
	if len(ids) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, n.cfg.StoreTimeout)
	res := n.store.LookupAll(sctx, ids)
	cancel()
	for i, st := range sts {
		if st.epoch.Load() != epoch || !st.connected.Load() || st.revoked.Load() {
			continue // changed since it was looked up: the next pass sees what it is now
		}
		n.audit(ctx, st, epoch, res[i])
	}
}

// audit acts on what the store holds for one client; see auditLoop.
func (n *Node) audit(ctx context.Context, st *clientState, epoch int64, found store.LookupResult) {
	p, depth, err := found.Presence, found.Depth, found.Err
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
