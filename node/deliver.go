package node

import (
	"context"
	"errors"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

var (
	// errClientGone: the client's connection ended before a write.
	errClientGone = errors.New("client connection closed")
	// errRevoked: the session was taken over elsewhere before a write.
	errRevoked = errors.New("session taken over")
	// errBlocked: something forbade a write once it could start (see Node.blocked).
	errBlocked = errors.New("write not allowed now")
)

// handler serves the wire protocol for the node. Its methods run on the wire
// connection's reader goroutine and never block.
type handler struct{ n *Node }

// Deliver hands a router's messages to the client's outbox, all or none. Each is answered
// when it is settled: acknowledged by the client, queued in its mailbox (after the max
// wait, or when the connection ends), or expired.
func (h handler) Deliver(_ context.Context, d wire.Deliver, reply func(int, wire.Result)) {
	n := h.n
	refuse := func(s wire.Status, detail string) {
		for i := range d.Msgs {
			n.metrics.countDelivery("direct", s)
			reply(i, wire.Result{Status: s, Detail: detail})
		}
	}
	epoch := n.epoch.Load()
	if epoch == 0 || d.Epoch != epoch {
		refuse(wire.StatusStaleEpoch, "node is not live under that epoch")
		return
	}
	st := n.clients.session(d.Client, d.Session)
	switch {
	case st == nil || !st.connected.Load():
		refuse(wire.StatusNotHere, "that session of the client is not connected here")
	case st.revoked.Load():
		refuse(wire.StatusNotHere, "the session was taken over")
	case !n.accept(st, d, reply):
		refuse(wire.StatusNotHere, "the client's outbox is full or closing")
	}
}

// Kick disconnects a session taken over on another node (MQTT 5 reason 0x8E). Nothing is
// written to the session once this returns.
func (h handler) Kick(_ context.Context, k wire.Kick) wire.Result {
	if !h.n.takenOverElsewhere(k.Client, k.Session, "kicked") {
		return wire.Result{Status: wire.StatusNotHere}
	}
	return wire.Result{Status: wire.StatusDelivered}
}

// Drain makes each named client connected here (every connection of it) read its mailbox
// before anything newer is sent to it.
func (h handler) Drain(_ context.Context, d wire.Drain) wire.Result {
	for _, c := range d.Clients {
		h.n.askMailboxAll(c)
	}
	return wire.Result{Status: wire.StatusDelivered}
}

// askMailboxAll has every connection of client read its mailbox first.
func (n *Node) askMailboxAll(client string) {
	for _, st := range n.clients.connectionsOf(client) {
		n.askMailbox(st)
	}
}

// revoke stops everything to the client's session if it is connected here and then
// disconnects it in the background. It reports whether it found the session.
func (n *Node) revoke(client, session, how string) bool {
	st := n.clients.session(client, session)
	if st == nil {
		return false
	}
	n.revokeState(st, how)
	return true
}

// takenOverElsewhere revokes the client's session, taken over by a CONNECT on another
// node (a Kick, or a revocation notice: nothing else sends either), and then discards it
// here: sessions do not migrate, so the client's session is the one over there now.
func (n *Node) takenOverElsewhere(client, session, how string) bool {
	st := n.clients.session(client, session)
	if st == nil {
		return false
	}
	n.revokeState(st, how)
	n.discardAfter(st)
	return true
}

func (n *Node) revokeState(st *clientState, how string) {
	n.log.Info("session taken over elsewhere; disconnecting it here", "client", st.id, "how", how)
	n.metrics.takeovers.WithLabelValues(how).Inc()
	n.endSession(st, how, packets.ErrSessionTakenOver)
}

// endSession stops everything to st and then disconnects it with code in the background.
func (n *Node) endSession(st *clientState, why string, code packets.Code) {
	if st.revoked.Swap(true) {
		return
	}
	// The session may outlive the connection in mochi (a session expiry): it must keep
	// nothing for a client that is elsewhere now, or whose access ended (see sessions.go).
	n.sessions.drop(st.cl)
	// From here on every write checks revoked under mochi's client lock before it starts
	// (writeToClient): only a write already under way can still reach the client.
	n.sendWG.Add(1)
	go func() {
		defer n.sendWG.Done()
		_ = n.mqtt.DisconnectClient(st.cl, code)
	}()
}

// discardAfter deletes st's mochi session once st's connection has been told to end, as
// if it had expired: a client taken over by a CONNECT on another node has its session
// there now (new, or discarded by Clean Start), and the one here must keep no
// subscriptions and no messages. Kept, it went on queueing for the client, and a later
// CONNECT here resumed it with session present and everything queued since [MQTT-3.1.2-4].
// A newer connection of the client here keeps its session: the CONNECT lock orders the
// two, and only the session st's connection holds is deleted.
func (n *Node) discardAfter(st *clientState) {
	n.sendWG.Add(1)
	go func() {
		defer n.sendWG.Done()
		select {
		case <-st.gone: // mochi is done with the connection (OnDisconnect)
		case <-time.After(n.cfg.Limits.ConnectTimeout):
			// Still open: mochi's disconnect did not end it; leave the session to expire.
			return
		}
		// Read after the connection's end (st.gone), when a DISCONNECT can no longer
		// change them.
		if p := &st.cl.Properties; p.ProtocolVersion == 5 && p.Props.SessionExpiryInterval == 0 || p.ProtocolVersion < 5 && p.Clean {
			// mochi deletes this session itself as the connection ends, by client id:
			// deleting it here first would let a new connection of the id take the entry
			// that mochi's late delete then removes.
			return
		}
		if n.discardSession(st.cl) {
			n.log.Debug("session taken over elsewhere: discarded here", "client", st.id)
		}
	}()
}

// discardSession deletes cl's mochi session, whose client is connected on another node
// now, as if it had expired, unless a newer connection of the client here holds the
// session now (the CONNECT lock orders the two): no subscriptions, no messages kept,
// nothing routed here for it. A delayed Will it holds is not sent: its client connected
// again within the delay [MQTT-3.1.3-9]. It reports whether it deleted the session.
func (n *Node) discardSession(cl *mqtt.Client) bool {
	unlock := n.connLocks.lock(cl.ID)
	defer unlock()
	if cur, ok := n.mqtt.Clients.Get(cl.ID); !ok || cur != cl {
		return false
	}
	if n.wills.cancel(cl.ID) {
		n.log.Debug("delayed Will cancelled: the client is connected on another node", "client", cl.ID)
	}
	n.mqtt.UnsubscribeClient(cl)
	cl.ClearInflights()
	n.sessions.drop(cl)
	n.cluster.sessionEnded(cl.ID)
	n.mqtt.Clients.Delete(cl.ID)
	return true
}

// applyNotices acts on the notices the delivery lease brought.
func (n *Node) applyNotices(ns []store.Notice) {
	for _, nt := range ns {
		switch nt.Kind {
		case store.NoticeMailbox:
			n.askMailboxAll(nt.Client)
		case store.NoticeRevoke:
			n.takenOverElsewhere(nt.Client, nt.Session, "revoked")
		}
	}
}

// localNotice acts on a notice the node's own teller has for one of its clients.
func (n *Node) localNotice(nt store.Notice) { n.applyNotices([]store.Notice{nt}) }
