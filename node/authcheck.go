package node

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// reservedPropertyPrefix: user properties whose key starts with this (any case) are the
// node's own (MessageIDProperty). A client may not set them on anything it publishes, its
// Will included, so no subscriber can mistake a client's message for a directed one.
const reservedPropertyPrefix = "sb-"

// stripReserved removes the node's reserved user properties from props.
func stripReserved(props []packets.UserProperty) []packets.UserProperty {
	keep := props[:0:0]
	dropped := false
	for _, p := range props {
		if len(p.Key) >= len(reservedPropertyPrefix) && strings.EqualFold(p.Key[:len(reservedPropertyPrefix)], reservedPropertyPrefix) {
			dropped = true
			continue
		}
		keep = append(keep, p)
	}
	if !dropped {
		return props
	}
	return keep
}

// checkWill applies the client's write rules to its Will at CONNECT: mochi publishes (and
// retains) a Will without any ACL check. It also refuses, as mosquitto does, a Will topic
// holding a wildcard and a payload the payload format indicator says is UTF-8 and is not,
// and keeps the Will's MQTT 5 properties that mochi's Will drops (see willPacket). It
// returns the CONNACK reason refusing the Will; ok is true when the Will may stand.
func (n *Node) checkWill(cl *mqtt.Client, st *clientState, wp packets.Properties) (_ packets.Code, ok bool) {
	w := &cl.Properties.Will
	if atomic.LoadUint32(&w.Flag) == 0 {
		return packets.CodeSuccess, true
	}
	w.User = stripReserved(w.User)
	if strings.ContainsAny(w.TopicName, "+#") {
		// A topic name, not a filter [MQTT-3.1.3-11]: mochi does not check, and could not
		// publish it. MQTT 3.1.1 has no code for it; the connection is closed (see OnConnect).
		n.throttled.log(n.log, slog.LevelInfo, "will refused: its topic holds a wildcard", "client", cl.ID, "topic", w.TopicName)
		return packets.ErrTopicNameInvalid, false
	}
	if notUTF8(wp, w.Payload) {
		n.throttled.log(n.log, slog.LevelInfo, "will refused: its payload format indicator says UTF-8, and the payload is not",
			"client", cl.ID, "topic", w.TopicName)
		return packets.ErrPayloadFormatInvalid, false
	}
	if !st.ident.CanPublish(w.TopicName) {
		n.metrics.aclDenied.WithLabelValues("will").Inc()
		n.throttled.log(n.log, slog.LevelInfo, "will refused: the client may not publish to its will topic",
			"client", cl.ID, "user", st.ident.Username, "topic", w.TopicName)
		if cl.Properties.ProtocolVersion < 5 {
			return packets.Err3NotAuthorized, false // mochi does not map 0x87 for 3.1.1
		}
		return packets.ErrNotAuthorized, false
	}
	st.willProps = packets.Properties{
		PayloadFormat: wp.PayloadFormat, PayloadFormatFlag: wp.PayloadFormatFlag,
		MessageExpiryInterval: wp.MessageExpiryInterval, ContentType: wp.ContentType,
		ResponseTopic: wp.ResponseTopic, CorrelationData: wp.CorrelationData,
	}
	return packets.CodeSuccess, true
}

// sysRefusedTopic is what a client's QoS 1 or 2 PUBLISH to a $SYS topic is given instead,
// so that mochi refuses it as it refuses a publish its ACL check denies (OnACLCheck denies
// this topic): MQTT 5 gets PUBACK or PUBREC 0x87 not authorized, MQTT 3.1.1 (which cannot
// refuse a publish) is disconnected. mochi v2.7.9 drops a $SYS publish before its ACL
// check without any answer, so the publisher waited for an acknowledgement forever, its
// packet id and a slot of its in-flight window held.
const sysRefusedTopic = "$switchboard/refused/sys"

// inboundPublish answers the client's publishes that mochi v2.7.9 answers wrongly: one
// whose topic name holds a wildcard is a malformed packet [MQTT-3.3.2-2], and the client
// is disconnected (MQTT 5: DISCONNECT 0x90 topic name invalid; mochi sent 0x82) and its
// Will sent; a QoS 1 or 2 one to $SYS, which mochi drops without a word, is refused as a
// denied publish (see sysRefusedTopic). A QoS 0
// publish to $SYS is dropped by mochi, as any refused QoS 0 publish is. It changes pk in
// place; an error (packets.ErrRejectPacket) makes mochi end the connection.
func (n *Node) inboundPublish(cl *mqtt.Client, pk *packets.Packet) error {
	if strings.ContainsAny(pk.TopicName, "+#") {
		n.throttled.log(n.log, slog.LevelInfo, "malformed PUBLISH: its topic name holds a wildcard; disconnecting",
			"client", cl.ID, "topic", pk.TopicName)
		if cl.Properties.ProtocolVersion == 5 {
			_ = n.mqtt.DisconnectClient(cl, packets.ErrTopicNameInvalid)
		} else {
			cl.Stop(packets.ErrTopicNameInvalid)
		}
		return packets.ErrRejectPacket
	}
	if pk.FixedHeader.Qos == 0 || len(pk.TopicName) < len(mqtt.SysPrefix) ||
		!strings.EqualFold(pk.TopicName[:len(mqtt.SysPrefix)], mqtt.SysPrefix) {
		return nil
	}
	n.metrics.aclDenied.WithLabelValues("publish").Inc()
	n.throttled.log(n.log, slog.LevelInfo, "access denied: clients may not publish to $SYS", "client", cl.ID, "topic", pk.TopicName)
	pk.TopicName = sysRefusedTopic
	return nil
}

// voidTopic is where a Will that may no longer be published goes instead: mochi publishes
// whatever OnWill returns, and a topic under $switchboard that no rule grants reaches
// nobody. It also stands in for every Will the node sends itself, which is every other one
// (see willPacket).
const voidTopic = "$switchboard/void"

var voidWill = mqtt.Will{TopicName: voidTopic, Qos: 0}

// OnWill checks the Will again as it is sent (the rules may have changed since CONNECT,
// or the user been removed): a Will the client may not publish now reaches nobody. mochi
// calls it when the connection ends. The node publishes the Will itself, with the
// properties mochi's packet would lack (publishWill), and mochi gets the stand-in. A Will
// with a delay, which mochi would publish after the delay unchecked, the node keeps and
// sends when due, checked once more then (see willdelay.go).
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	n := h.n
	st := n.clients.byClient(cl)
	if st != nil && st.willDropped.Load() {
		return voidWill, nil // its credentials were revoked (see authLoop)
	}
	will.User = stripReserved(will.User)
	if st == nil || st.ident == nil || st.ident.Valid() != nil || !st.ident.CanPublish(will.TopicName) {
		n.metrics.aclDenied.WithLabelValues("will").Inc()
		n.throttled.log(n.log, slog.LevelInfo, "will dropped: the client may no longer publish to its will topic",
			"client", cl.ID, "topic", will.TopicName)
		return voidWill, nil
	}
	if will.WillDelayInterval > 0 {
		n.holdWill(cl, st, will)
	} else {
		n.publishWill(cl, will, st.willProps)
	}
	return voidWill, nil
}

// authLoop ends, after every reload of the credentials, the sessions whose credentials no
// longer admit them (user removed, password changed, client id no longer allowed, token
// revoked): nothing more is delivered to them, their Will is dropped, and they are
// disconnected with reason 0x87 (not authorized). A Will whose topic the rules no longer
// allow is left to OnWill, which checks every Will when it is sent: mochi reads the Will
// on the client's goroutine, so nothing here may change it. A reload during a pass is
// acted on by another pass (notify.Each); a CONNECT that authenticated before a reload and
// joined the client table after the pass that followed it checks again itself (OnConnect).
func (n *Node) authLoop(ctx context.Context) {
	notify.Each(ctx, func() <-chan struct{} { _, changed := n.cfg.Auth.Changed(); return changed }, func() {
		ended := 0
		for _, st := range n.clients.all() {
			if st.ident == nil {
				continue
			}
			if err := st.ident.Valid(); err != nil {
				// Marked before the disconnect that makes mochi ask OnWill.
				st.willDropped.Store(true)
				n.log.Info("credentials revoked: ending the session", "client", st.id, "user", st.ident.Username, "reason", err)
				n.endSession(st, "credentials revoked", packets.ErrNotAuthorized)
				ended++
			}
		}
		if ended > 0 {
			n.metrics.authRevoked.Add(float64(ended))
		}
	})
}

// logThrottle caps how many lines a flood of refusals writes: rate a second with a burst,
// then one line every interval saying how many were suppressed, so an attacker cannot
// fill the disk through the log. A line below the logger's level neither spends the budget
// nor counts as suppressed (the report would name lines nobody could have seen).
type logThrottle struct {
	mu         sync.Mutex
	rate       float64
	burst      float64
	tokens     float64
	last       time.Time
	suppressed int
	reported   time.Time
}

func newLogThrottle(rate float64, burst int) *logThrottle {
	return &logThrottle{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

func (l *logThrottle) log(log *slog.Logger, level slog.Level, msg string, args ...any) {
	if !log.Enabled(context.Background(), level) {
		return
	}
	now := time.Now()
	l.mu.Lock()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.tokens--
	suppressed := 0
	if l.suppressed > 0 && now.Sub(l.reported) > 10*time.Second {
		suppressed, l.suppressed, l.reported = l.suppressed, 0, now
	}
	l.mu.Unlock()
	if suppressed > 0 {
		log.Warn("refusal log lines suppressed (rate limit)", "lines", suppressed)
	}
	log.Log(context.Background(), level, msg, args...)
}
