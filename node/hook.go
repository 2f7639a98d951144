package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/inbox"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// hook connects mochi's client lifecycle to presence, readiness and delivery. mochi runs
// hooks synchronously on the client's goroutine, so every store call here has a deadline.
type hook struct {
	mqtt.HookBase
	n *Node
}

func (h *hook) ID() string { return "switchboard" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnPublishDropped,
		mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnPublish, mqtt.OnWill, mqtt.OnClientExpired,
		mqtt.OnSelectSubscribers, mqtt.OnRetainMessage, mqtt.OnQosDropped,
	}, []byte{b})
}

// OnQosDropped gives back the send quota of a QoS 1/2 message mochi deleted from a
// client's in-flight window because it expired. mochi v2.7.9 deletes it even when it was
// sent and is waiting for its acknowledgement, and never adds the slot back: each expiry
// cost a connected MQTT 5 client one of its Receive Maximum slots for good, and once they
// were gone it received no QoS 1/2 message at all until it reconnected. mochi calls this
// twice per deleted message, once with the message and once with its packet id alone;
// only the first counts.
func (h *hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type == packets.Publish {
		cl.State.Inflight.IncreaseSendQuota()
	}
}

// OnPacketRead applies the packet-latency failpoint (a no-op unless a test set it), and
// routes the client's acknowledgements of packets the server sent: a directed message's
// PUBACK settles it, and mochi's own get their packet ids back (see pids.go).
//
// The packet (800 bytes) is changed in place, through a pointer, below here: every copy
// passed or returned by value is stack space on the client's read goroutine, and a PUBACK
// that needs more than the stack the collector shrank it to while the client was idle
// makes the runtime copy the stack to a larger one, for each client after each collection.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.n.fp.delay()
	switch pk.FixedHeader.Type {
	case packets.Disconnect:
		h.clampDisconnect(&pk)
	case packets.Publish:
		if err := h.n.inboundPublish(cl, &pk); err != nil {
			return pk, err
		}
	default:
		h.n.inbound(cl, &pk)
	}
	return pk, nil
}

// clampDisconnect applies clampSessionExpiry to pk in place. It is kept out of line so
// that the copies clampSessionExpiry takes and returns are on the stack of a DISCONNECT
// only, not in OnPacketRead's frame for every packet (see OnPacketRead).
//
//go:noinline
func (h *hook) clampDisconnect(pk *packets.Packet) { *pk = h.n.clampSessionExpiry(*pk) }

// OnPacketEncode gives mochi's own outgoing QoS>0 publishes wire packet ids from the
// node's table, so they never share one with a directed message (see pids.go), gives a
// renumbered SUBSCRIBE's answer its id back, and puts right the reason code of mochi's
// PUBACKs (see fixPuback).
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		return h.n.advertiseLimits(pk)
	case packets.Puback:
		return fixPuback(pk)
	case packets.Suback, packets.Unsuback:
		return h.n.outboundSuback(cl, pk)
	}
	return h.n.outbound(cl, pk)
}

// advertiseLimits adds to an MQTT 5 CONNACK that admits the client the node's Topic Alias
// Maximum and Maximum Packet Size, which mochi v2.7.9 enforces but does not send. Without
// them a client must take the alias maximum for 0 [MQTT-3.2.2-17] and never use an alias,
// and may send a packet larger than the node takes, which is answered by a closed
// connection.
func (n *Node) advertiseLimits(pk packets.Packet) packets.Packet {
	if pk.ProtocolVersion == 5 && pk.ReasonCode < packets.ErrUnspecifiedError.Code {
		pk.Properties.TopicAliasMaximum = n.cfg.Limits.TopicAliasMax
		pk.Properties.MaximumPacketSize = n.cfg.Limits.MaxPacketSize
	}
	return pk
}

// fixPuback answers a QoS 1 PUBLISH that mochi accepted with reason code 0x00 (success).
// mochi v2.7.9 builds that PUBACK with the SUBACK code "granted QoS 1" (0x01), which MQTT 5
// does not define for PUBACK (MQTT.js v5 takes it for a failure and its publish never
// completes), and copies the PUBLISH's user properties onto it. Its encoder writes the
// reason code only when the packet has properties to write, so only a PUBLISH with user
// properties showed it. Codes of 0x80 and above (refusals) are left alone. The echoed
// user properties are dropped too: they are the publisher's own, and MQTT 5 lets a
// server's PUBACK carry user properties of its own, not send back the client's.
func fixPuback(pk packets.Packet) packets.Packet {
	switch pk.ReasonCode {
	case packets.CodeSuccess.Code, packets.CodeNoMatchingSubscribers.Code:
		return pk // PUBACK codes below 0x80 that MQTT 5 defines
	}
	if pk.ReasonCode < packets.ErrUnspecifiedError.Code {
		pk.ReasonCode = packets.CodeSuccess.Code
		pk.Properties.User = nil
	}
	return pk
}

// OnConnectAuthenticate admits every client that reached it: OnConnect has already
// authenticated it (and answered those it refused with the right reason code).
func (h *hook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// OnACLCheck decides subscriptions (on the raw filter, wildcards and $share included) and
// publishes. mochi checks a publish before resolving its topic alias, so an aliased publish
// arrives here with an empty topic: OnPublish checks the resolved topic again.
//
// A read check for a client whose connection has ended is mochi deciding whether its
// session keeps a message for it: it is decided on the identity the session authenticated
// with, unless those credentials have been revoked since (see sessions.go).
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write && topic == sysRefusedTopic {
		return false // counted and logged when it was read (inboundPublish)
	}
	st := h.n.clients.byClient(cl)
	if st != nil && st.revoked.Load() {
		return false // ended here (taken over, access revoked): it gets and sends nothing more
	}
	delivery := !write && (st == nil || !st.subscribing.Load())
	if delivery && strings.HasPrefix(topic, "$") && !dollarSubscribed(cl, topic) {
		return false // not an access decision: see dollarSubscribed
	}
	var ident *auth.Identity
	if st != nil {
		ident = st.ident
	} else if !write {
		if ident = h.n.sessions.get(cl); ident != nil && ident.Valid() != nil {
			ident = nil
		}
	}
	if ident == nil {
		return false
	}
	var ok bool
	switch {
	case write && topic == "":
		return true // aliased: decided in OnPublish on the real topic
	case write:
		ok = ident.CanPublish(topic)
	default:
		ok = ident.CanSubscribe(topic)
	}
	if !ok {
		h.n.metrics.aclDenied.WithLabelValues(map[bool]string{true: "publish", false: "subscribe"}[write]).Inc()
		h.n.throttled.log(h.n.log, slog.LevelInfo, "access denied", "client", cl.ID, "user", ident.Username, "topic", topic, "write", write)
	}
	return ok
}

// dollarSubscribed reports whether one of cl's subscriptions matches the $ topic without
// beginning with a wildcard [MQTT-4.7.2-1]. mochi (v2.7.9) keeps that rule when it routes a
// publish, but when it sends the retained messages matching a new subscription it leaves
// out only $SYS, so a subscriber to # or +/x got every other retained $ message. mochi asks
// OnACLCheck before each of those sends; the subscription that led there is one of cl's.
func dollarSubscribed(cl *mqtt.Client, topic string) bool {
	for filter := range cl.State.Subscriptions.GetAll() {
		if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
			_, filter, _ = strings.Cut(rest, "/")
		}
		if filter == "" || filter[0] == '+' || filter[0] == '#' {
			continue
		}
		if inbox.Matches(filter, topic) {
			return true
		}
	}
	return false
}

// OnClientExpired forgets the identity and the routes of a session mochi has expired.
func (h *hook) OnClientExpired(cl *mqtt.Client) {
	h.n.sessions.drop(cl)
	if h.n.sessionOver(cl) {
		h.n.cluster.sessionEnded(cl.ID)
	}
}

// OnRetainMessage checks the version of every retained message mochi keeps (see
// retainedCopies.retained).
func (h *hook) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, _ int64) {
	h.n.cluster.ret.retained(pk)
}

// OnSelectSubscribers leaves mochi the subscribers the cluster chose for a publish (see
// cluster.selectSubscribers).
func (h *hook) OnSelectSubscribers(subs *mqtt.Subscribers, pk packets.Packet) *mqtt.Subscribers {
	return h.n.cluster.selectSubscribers(subs, pk)
}

// OnPublish checks the publish again on its real topic, after alias resolution, and
// removes the user properties only the node may set.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if cl.Properties.ProtocolVersion == 5 && notUTF8(pk.Properties, pk.Payload) {
		return pk, h.n.invalidPayload(cl, pk)
	}
	st := h.n.clients.byClient(cl)
	if st != nil && st.ident != nil && st.ident.CanPublish(pk.TopicName) {
		if len(pk.Properties.User) > 0 {
			pk.Properties.User = stripReserved(pk.Properties.User)
		}
		return h.n.clusterPublish(cl, pk)
	}
	h.n.metrics.aclDenied.WithLabelValues("publish").Inc()
	h.n.throttled.log(h.n.log, slog.LevelInfo, "access denied (resolved topic)", "client", cl.ID, "topic", pk.TopicName)
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
		return pk, packets.ErrNotAuthorized // mochi answers PUBACK 0x87
	}
	if cl.Properties.ProtocolVersion < 5 {
		// 3.1.1 has no way to refuse a publish but to close the connection.
		cl.Stop(packets.ErrNotAuthorized)
	}
	return pk, packets.ErrRejectPacket
}

// invalidPayload refuses an MQTT 5 PUBLISH whose payload format indicator says UTF-8 when
// the payload is not: subscribers would get a string they cannot decode. As mosquitto, QoS 0
// is dropped and QoS 1 gets PUBACK 0x99 payload format invalid; QoS 2 ends the connection
// with DISCONNECT 0x99, since mochi answers a QoS 2 refusal from this hook with a PUBACK.
func (n *Node) invalidPayload(cl *mqtt.Client, pk packets.Packet) error {
	n.throttled.log(n.log, slog.LevelInfo, "PUBLISH refused: payload format indicator 1 (UTF-8) on a payload that is not",
		"client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos)
	switch pk.FixedHeader.Qos {
	case 1:
		return packets.ErrPayloadFormatInvalid // mochi answers PUBACK 0x99
	case 2:
		_ = n.mqtt.DisconnectClient(cl, packets.ErrPayloadFormatInvalid)
	}
	return packets.ErrRejectPacket // dropped
}

// notUTF8 reports whether props' payload format indicator says the payload is UTF-8 text
// and it is not: a PUBLISH or a Will that no subscriber may be given.
func notUTF8(props packets.Properties, payload []byte) bool {
	return props.PayloadFormatFlag && props.PayloadFormat == 1 && !utf8.Valid(payload)
}

// errRefused ends a connection whose CONNACK we already sent.
var errRefused = errors.New("connection refused")

// OnConnect admits or refuses a connection (sending the CONNACK itself when it refuses, so
// it can choose the reason code), sets the keep-alive it is held to (see keepalive.go),
// records the client's presence, and takes the session over from wherever it was, all
// before mochi answers CONNACK. One client id's CONNECTs
// are handled one at a time on this node (until OnSessionEstablished or the connection's
// end), so the client table, mochi's session and the presence always name the same one.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	n := h.n
	if g := n.gate.Load(); g != nil {
		n.metrics.connections.WithLabelValues("refused_" + metricReason(g.reason)).Inc()
		return n.refuse(cl, g)
	}
	if err := inbox.ValidateClientID(cl.ID); err != nil {
		n.metrics.connections.WithLabelValues("refused_invalid_id").Inc()
		n.log.Info("refusing connection", "remote", cl.Net.Remote, "error", err)
		_ = n.mqtt.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
		return errRefused
	}
	// Before the credential check: a keep-alive refused costs no bcrypt comparison.
	if !n.applyKeepAlive(cl, pk) {
		return n.refuseKeepAlive(cl, pk)
	}
	ident, err := n.authenticate(cl, pk)
	if errors.Is(err, errAuthLimited) {
		return n.refuseAuthLimit(cl, err)
	}
	if err != nil {
		return n.refuseAuth(cl, err)
	}
	n.lockConnect(cl)
	refused := func(reason string, code error) error {
		n.metrics.connections.WithLabelValues("refused_" + reason).Inc()
		n.unlockConnect(cl)
		return code
	}
	epoch := n.epoch.Load()
	if epoch == 0 {
		return refused("not_live", n.refuse(cl, &gateState{reason: "not live"}))
	}
	st := newClientState(cl.ID, cl, randomToken())
	st.ident = ident
	st.keeps = resumable(cl)
	if code, ok := n.checkWill(cl, st, pk.Connect.WillProperties); !ok {
		n.unlockConnect(cl)
		n.metrics.connections.WithLabelValues("refused_will").Inc()
		// MQTT 3.1.1 has a CONNACK code for a refused ACL only; for the others the
		// connection is just closed.
		if cl.Properties.ProtocolVersion >= 5 || code == packets.Err3NotAuthorized {
			_ = n.mqtt.SendConnack(cl, code, false, nil)
		}
		return errRefused
	}
	// In the table before the presence names it: a takeover by another node that follows
	// the presence write must find this session to revoke it.
	old := n.clients.add(st)
	if err := ident.Valid(); err != nil {
		// The credentials were reloaded since authenticate read them (the CONNECT lock
		// can wait seconds behind a takeover), and authLoop's pass for that reload may
		// have looked at the table before this session was in it. Once it is in, a pass
		// for a reload not seen here will find it.
		n.clients.remove(st)
		if old != nil {
			n.clients.putBack(old)
		}
		n.unlockConnect(cl)
		return n.refuseAuth(cl, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.StoreTimeout)
	defer cancel()
	p := store.Presence{
		Client: cl.ID, Node: n.cfg.ID, Epoch: epoch, Session: st.session, Since: time.Now().Add(n.cfg.ClockSkew).UTC(),
	}
	res, err := n.store.Connect(ctx, p)
	if err != nil && ctx.Err() == nil {
		// The write may have happened with only its answer lost; the store answers a second
		// Connect of the same session with what the first returned, so the takeover it
		// recorded is not lost with the answer.
		res, err = n.store.Connect(ctx, p)
	}
	if err != nil {
		n.clients.remove(st)
		if old != nil {
			n.clients.putBack(old)
		}
		// The write may have happened with only its answers lost: take the presence back
		// (compare-and-delete: only if this session still owns it), or every message for
		// the client would go to a session that does not exist. The session it replaced,
		// if it did, stays recorded as a pending takeover for the client's next CONNECT;
		// until then its node holds it without a presence, and the presence audit
		// (auditLoop) finds that.
		dctx, dcancel := context.WithTimeout(context.Background(), n.cfg.StoreTimeout)
		_, _ = n.store.Disconnect(dctx, cl.ID, st.session)
		dcancel()
		n.log.Warn("refusing connection: cannot record presence", "client", cl.ID, "error", err)
		return refused("store", n.refuse(cl, &gateState{reason: "presence store unavailable"}))
	}
	st.connected.Store(true)
	st.epoch.Store(epoch)
	if old != nil && old != st {
		// An older connection of this id here: mochi takes it over after this hook, and
		// nothing more is sent to it from now on.
		n.revokeState(old, "local")
		st.prev = old
	}
	if now := n.epoch.Load(); now != epoch && now != 0 {
		// Registered again while we wrote: record the new epoch too, or give up (nothing
		// could be sent to this session under an epoch it is not confirmed for).
		p.Epoch = now
		err := n.store.Reassert(ctx, p)
		if err == nil {
			// As in reassertAll: a revocation stored while the old epoch was out of the
			// live set is acted on before this session is written to.
			err = n.awaitNotices(ctx, time.Now())
		}
		if err != nil {
			n.log.Warn("refusing connection: cannot record presence under the new epoch", "client", cl.ID, "error", err)
			n.forget(st)
			return refused("store", n.refuse(cl, &gateState{reason: "presence store unavailable"}))
		}
		raiseEpoch(st, now)
	}
	// Every earlier session of this id elsewhere — the one replaced, and any whose
	// takeover was never confirmed — must receive nothing more before this one is
	// answered: its node said so, or was told through the store and its lease ran out.
	if err := n.takeOver(st, res); err != nil {
		n.log.Warn("refusing connection: a previous session could not be taken over", "client", cl.ID, "error", err)
		n.forget(st) // the store keeps the takeovers pending for the client's next CONNECT
		return refused("takeover", n.refuse(cl, &gateState{reason: "takeover failed"}))
	}
	if st.revoked.Load() {
		// Taken over by a CONNECT elsewhere while this one was being handled.
		n.forget(st)
		return refused("takeover", n.refuse(cl, &gateState{reason: "taken over"}))
	}
	if !ident.Expires.IsZero() {
		// A token's expiry holds for the whole connection, not just at CONNECT.
		st.expiry = time.AfterFunc(time.Until(ident.Expires), func() {
			n.log.Info("token expired: disconnecting", "client", cl.ID)
			_ = n.mqtt.DisconnectClient(cl, packets.ErrNotAuthorized)
		})
	}
	n.sessions.set(cl, ident)
	n.metrics.connections.WithLabelValues("accepted").Inc()
	return nil
}

// takeOver revokes every earlier session named by a Connect's result that is not on this
// node's table any more, then confirms the takeover in the store.
func (n *Node) takeOver(st *clientState, res store.ConnectResult) error {
	type target struct {
		node  string
		epoch int64
	}
	tell := map[target][]store.Notice{}
	var order []target
	recorded := len(res.Pending) > 0 // the store keeps a list to confirm
	for _, p := range append(res.Pending, res.Prev) {
		if !p.Online() || p.Session == st.session {
			continue
		}
		if p.Node == n.cfg.ID {
			n.revoke(p.Client, p.Session, "local")
			continue
		}
		k := target{p.Node, p.Epoch}
		if _, ok := tell[k]; !ok {
			order = append(order, k)
		}
		tell[k] = append(tell[k], store.Notice{Kind: store.NoticeRevoke, Client: p.Client, Session: p.Session})
		recorded = true
	}
	if !recorded {
		return nil
	}
	if len(order) > 0 {
		n.metrics.takeovers.WithLabelValues("remote").Inc()
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.tellBudget())
	defer cancel()
	// In parallel: each may have to wait out a lease, and the budget holds one wait.
	errs := make(chan error, len(order))
	for _, k := range order {
		go func() {
			if err := n.teller.Tell(ctx, k.node, k.epoch, tell[k]); err != nil {
				errs <- fmt.Errorf("node %s: %w", k.node, err)
				return
			}
			errs <- nil
		}()
	}
	var failed []error
	for range order {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return errors.Join(failed...)
	}
	if err := n.store.ConfirmTakeover(ctx, st.id, st.session); err != nil && !errors.Is(err, store.ErrNotOwner) {
		// Done but not recorded as done: the next CONNECT revokes them again, harmlessly.
		n.log.Warn("confirm takeover", "client", st.id, "error", err)
	}
	return nil
}

// lockConnect takes the per-client-id CONNECT lock for cl; unlockConnect (called from
// OnSessionEstablished, or when the connection ends) releases it.
func (n *Node) lockConnect(cl *mqtt.Client) {
	unlock := n.connLocks.lock(cl.ID)
	n.connMu.Lock()
	n.connecting[cl] = &connectHold{unlock: unlock}
	n.connMu.Unlock()
}

// connectHold is what a CONNECT holds until its session is established or its connection
// ends: the client id's CONNECT lock and, for a resumed session, the stamps of its messages
// (resend.go), which are taken back first.
type connectHold struct {
	unlock func()
	stamps map[uint16]stamp
}

func (n *Node) unlockConnect(cl *mqtt.Client) {
	n.connMu.Lock()
	h := n.connecting[cl]
	delete(n.connecting, cl)
	n.connMu.Unlock()
	if h == nil {
		return
	}
	n.unstamp(cl, h.stamps)
	h.unlock()
}

// connectionDone releases what a connection may still hold when mochi is done with it,
// however it ended.
func (n *Node) connectionDone(conn net.Conn) {
	n.connMu.Lock()
	var cls []*mqtt.Client
	for cl := range n.connecting {
		if cl.Net.Conn == conn {
			cls = append(cls, cl)
		}
	}
	n.connMu.Unlock()
	for _, cl := range cls {
		n.unlockConnect(cl)
	}
	if st := n.clients.byNetConn(conn); st != nil {
		// mochi ends some connections without OnDisconnect (a failed CONNACK write).
		n.forget(st)
	}
}

// refuseAuth answers CONNACK for a failed authentication: bad credentials 0x86 (3.1.1:
// 0x04), a client id the credentials may not use 0x85 (0x02), anonymous access refused 0x87
// (0x05). The attempt is logged and counted.
func (n *Node) refuseAuth(cl *mqtt.Client, err error) error {
	v5 := cl.Properties.ProtocolVersion == 5
	code, reason := packets.ErrNotAuthorized, "not_authorized"
	v3 := packets.Err3NotAuthorized
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		code, reason, v3 = packets.ErrBadUsernameOrPassword, "bad_credentials", packets.Code{Code: 0x04, Reason: "bad user name or password"}
	case errors.Is(err, auth.ErrClientIDNotAllowed):
		code, reason, v3 = packets.ErrClientIdentifierNotValid, "client_id_not_allowed", packets.Err3ClientIdentifierNotValid
	case errors.Is(err, auth.ErrAnonymousNotAllowed):
		reason = "anonymous"
	}
	n.metrics.authFailures.WithLabelValues(reason).Inc()
	n.throttled.log(n.log, slog.LevelWarn, "authentication refused", "client", cl.ID, "user", string(cl.Properties.Username),
		"remote", cl.Net.Remote, "reason", err)
	if !v5 {
		code = v3
	}
	_ = n.mqtt.SendConnack(cl, code, false, nil)
	return errRefused
}

// refuse answers CONNACK with a reason that sends the client elsewhere: MQTT 5 gets 0x9C
// (use another server, with a server reference) while quarantined, 0x88 (server
// unavailable) otherwise; MQTT 3.1.1 gets 0x03 (server unavailable).
func (n *Node) refuse(cl *mqtt.Client, g *gateState) error {
	code := packets.ErrServerUnavailable
	var props *packets.Properties
	if cl.Properties.ProtocolVersion == 5 && g.redirect {
		if ref := n.otherServer(); ref != "" {
			code = packets.ErrUseAnotherServer
			props = &packets.Properties{ServerReference: ref}
		}
	}
	_ = n.mqtt.SendConnack(cl, code, false, props)
	return errRefused
}

// otherServer names another live node's MQTT address, for MQTT 5 redirects.
func (n *Node) otherServer() string {
	if n.members == nil {
		return ""
	}
	for _, m := range n.members.Members() {
		if m.ID != n.cfg.ID {
			return m.MQTTAddr
		}
	}
	return ""
}

// OnSessionEstablish runs before mochi takes over a session the CONNECT resumes: it
// stamps that session's messages so that mochi resends them in the order they were queued
// (resend.go).
func (h *hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) { h.n.orderResend(cl, pk) }

// OnSessionEstablished runs after CONNACK and mochi's resend, before the connection reads
// anything: it releases what the CONNECT held (the client id's CONNECT lock; a resumed
// session's messages get their real creation times back first, resend.go),
// cancels a delayed Will of the id that the node still holds [MQTT-3.1.3-9] (as mochi
// cancels its own here), and makes a resumed session that already holds the inbox
// subscription ready.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.n.unlockConnect(cl)
	if h.n.wills.cancel(cl.ID) {
		h.n.log.Debug("delayed Will cancelled: the client connected again", "client", cl.ID)
	}
	if st := h.n.clients.byClient(cl); st != nil {
		h.n.updateReady(st)
	}
}

// OnSubscribe marks the client's SUBSCRIBE as being checked (see OnACLCheck), and takes
// out the filters over the session's limits (Limits.MaxSubscriptions, MaxFilterLength).
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if st := h.n.clients.byClient(cl); st != nil {
		st.subscribing.Store(true)
		st.overQuota = h.n.overQuota(cl, pk.Filters)
		if len(st.overQuota) > 0 {
			// mochi (v2.7.9) lets a hook refuse a filter only as not authorized (0x87): an
			// invalid filter in its place is refused, unchecked and unstored, as 0x8F, which
			// OnSubscribed makes 0x97 in the SUBACK mochi then sends.
			pk.Filters = slices.Clone(pk.Filters)
			for _, i := range st.overQuota {
				pk.Filters[i].Filter = overQuotaFilter
			}
			h.n.metrics.limits.WithLabelValues("subscriptions").Add(float64(len(st.overQuota)))
			h.n.throttled.log(h.n.log, slog.LevelInfo, "subscriptions over the session's limits refused", "client", cl.ID,
				"refused", len(st.overQuota), "max_subscriptions", h.n.cfg.Limits.MaxSubscriptions, "max_filter_length", h.n.cfg.Limits.MaxFilterLength)
		}
	}
	return pk
}

// overQuotaFilter stands in for a filter over the limits: mochi finds it invalid.
const overQuotaFilter = "#/over-quota"

// overQuota returns the indexes of filters that cl may not add: longer than MaxFilterLength,
// or new ones beyond MaxSubscriptions. Its own inbox and probe topic do not count, so that a
// full session can always take its directed messages.
func (n *Node) overQuota(cl *mqtt.Client, filters packets.Subscriptions) []int {
	held := map[string]bool{}
	count := 0
	for f := range cl.State.Subscriptions.GetAll() {
		held[f] = true
		if n.cluster.isRoute(cl.ID, f) {
			count++
		}
	}
	var over []int
	for i, sub := range filters {
		switch {
		case len(sub.Filter) > n.cfg.Limits.MaxFilterLength:
			over = append(over, i)
		case held[sub.Filter] || !n.cluster.isRoute(cl.ID, sub.Filter):
		case count >= n.cfg.Limits.MaxSubscriptions:
			over = append(over, i)
		default:
			held[sub.Filter] = true
			count++
		}
	}
	return over
}

// OnSubscribed makes the client ready once it subscribes to its inbox, and makes its new
// subscriptions known to the cluster. mochi sends the SUBACK when this returns, and then
// the retained messages.
func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if st := h.n.clients.byClient(cl); st != nil {
		st.subscribing.Store(false)
		// codes is the SUBACK's own slice (mochi builds the packet with it before calling
		// this hook); MQTT 3.1.1 has only 0x80 for a refusal, which mochi set already.
		for _, i := range st.overQuota {
			if i < len(codes) && cl.Properties.ProtocolVersion >= 5 {
				codes[i] = packets.ErrQuotaExceeded.Code
			}
		}
		st.overQuota = nil
		h.n.updateReady(st)
	}
	retainedWithIdentifiers(pk)
	h.n.cluster.subscribed(cl, pk, codes)
}

// retainedWithIdentifiers gives the retained messages mochi sends for a new subscription
// the Subscription Identifier the SUBSCRIBE gave it [MQTT-3.3.4-3]; mochi v2.7.9 sent them
// without. mochi takes a message's identifiers from Subscription.Identifiers alone, which
// it fills only for live publishes, and sends the retained messages after this hook from
// the filters of this packet, whose array pk shares; the subscriptions are stored by then,
// so the map (one per filter) is never seen by them.
func retainedWithIdentifiers(pk packets.Packet) {
	for i := range pk.Filters {
		if f := &pk.Filters[i]; f.Identifier > 0 && f.Identifiers == nil {
			f.Identifiers = map[string]int{f.Filter: f.Identifier}
		}
	}
}

// OnUnsubscribed makes the client not ready when it drops its inbox subscription, and
// withdraws its routes. mochi calls it for every subscription of a session it deletes too.
func (h *hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if st := h.n.clients.byClient(cl); st != nil {
		h.n.updateReady(st)
	}
	h.n.cluster.unsubscribed(cl, pk)
}

// updateReady recomputes readiness from the client's subscriptions and wakes the sender
// when the client has just become ready (it reads the mailbox first). It also keeps the
// Subscription Identifiers of the subscriptions its directed messages match, which they
// carry as a publish does [MQTT-3.3.4-3].
func (n *Node) updateReady(st *clientState) {
	topic := inbox.Topic(n.cfg.InboxPrefix, st.id)
	ready := false
	var ids []int
	for filter, sub := range st.cl.State.Subscriptions.GetAll() {
		if inbox.Matches(filter, topic) {
			ready = true
			if sub.Identifier > 0 {
				ids = append(ids, sub.Identifier)
			}
		}
	}
	if ids == nil {
		st.inboxIDs.Store(nil)
	} else {
		slices.Sort(ids)
		st.inboxIDs.Store(&ids)
	}
	if was := st.ready.Swap(ready); ready && !was {
		n.wake(st)
	}
}

// OnDisconnect clears the client's presence (only if this connection still owns it) and
// queues its unanswered directed messages in its mailbox.
func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	h.n.cluster.shares.memberGone(cl)
	if expire {
		// mochi deletes the session now. Its routes go by OnUnsubscribed, which mochi calls
		// for a session it deletes, and only then: deciding here would race a takeover that
		// inherits the subscriptions (mochi marks the old connection taken over after it
		// told this one to end).
		h.n.sessions.drop(cl)
	}
	st := h.n.clients.byClient(cl)
	if st == nil {
		return
	}
	h.n.forget(st)
}

// forget ends what the node does for a connection. Idempotent.
func (n *Node) forget(st *clientState) {
	n.cluster.shares.memberGone(st.cl)
	n.clients.remove(st)
	st.ready.Store(false)
	st.markGone()
	n.closeOutbox(st)
	if !st.connected.Swap(false) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.StoreTimeout)
	defer cancel()
	if _, err := n.store.Disconnect(ctx, st.id, st.session); err != nil {
		// The reaper clears it when this node leaves; routers check the session anyway.
		n.log.Warn("clear presence", "client", st.id, "error", err)
	}
}

// onPanic cleans up after a panic recovered in a client's goroutine: mochi did not get to
// run its own disconnect handling, so the client may still be in its table.
func (n *Node) onPanic(conn net.Conn, _ any) {
	n.metrics.panics.Inc()
	st := n.clients.byNetConn(conn)
	if st == nil {
		return
	}
	if cur, ok := n.mqtt.Clients.Get(st.id); ok && cur == st.cl {
		n.mqtt.Clients.Delete(st.id)
	}
	n.sessions.drop(st.cl) // mochi's session went with it
	n.forget(st)
}

// OnPublishDropped keeps a QoS>0 message mochi dropped for a slow subscriber (its outbound
// queue was full): it goes to the subscriber's mailbox instead of being lost.
func (h *hook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	if id, ok := shareID(pk.Connect.ClientIdentifier); ok {
		// A shared-group message: another member takes it.
		h.n.cluster.shares.settle(id, wire.Result{Status: wire.StatusNotHere, Detail: "the member's queue is full"})
		return
	}
	if pk.FixedHeader.Qos == 0 {
		return
	}
	n := h.n
	now := time.Now()
	ttl := n.cfg.Limits.MaxMessageExpiry
	if pk.Expiry > 0 {
		// mochi stamps the expiry on this node's clock, in whole seconds.
		ttl = time.Until(time.Unix(pk.Expiry, 0))
		if ttl <= 0 {
			return // expired: never delivered
		}
	}
	m := store.Message{
		ID: "dropped-" + randomToken(), To: cl.ID, Topic: pk.TopicName, Payload: pk.Payload, QoS: 1,
		Accepted: now.Add(n.cfg.ClockSkew).UTC(), TTL: ttl,
	}
	origin := ""
	st := n.clients.byClient(cl)
	if st != nil {
		origin = st.session
	}
	// On the publisher's goroutine, with a deadline: drops for one subscriber arrive in
	// order and must be appended in order.
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.StoreTimeout)
	defer cancel()
	res, err := n.teller.Queue(ctx, origin, []store.Message{m})
	if err == nil && res[0].Err != nil {
		err = res[0].Err
	}
	if err != nil {
		n.metrics.dropsLost.Inc()
		n.log.Error("a message dropped for a slow subscriber could not be kept", "client", cl.ID, "error", err)
		return
	}
	n.metrics.dropsKept.Inc()
	if st != nil {
		n.askMailbox(st)
	}
}

func metricReason(r string) string {
	switch r {
	case "starting", "shutting down", "quarantined", "fenced", "registering", "not live":
		return strings.ReplaceAll(r, " ", "_")
	}
	return "unavailable"
}

// connectionEnded counts connections a limit ended.
func (n *Node) connectionEnded(err error) {
	var limit string
	switch {
	case err == nil:
		return
	case errors.Is(err, errRateLimited):
		limit = "conn_rate"
	case errors.Is(err, packets.ErrPacketTooLarge):
		limit = "packet_size"
	case errors.Is(err, packets.ErrServerBusy):
		limit = "max_clients"
	case errors.Is(err, packets.ErrReceiveMaximum):
		limit = "receive_maximum"
	case errors.Is(err, packets.ErrQuotaExceeded):
		limit = "inflight"
	default:
		return
	}
	n.metrics.limits.WithLabelValues(limit).Inc()
}
