package node

import (
	"container/heap"
	"context"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/auth"
)

// A Will with a Will Delay Interval (MQTT 5) is not mochi's to send. mochi calls OnWill
// when the connection ends, keeps what it returned and publishes that after the delay with
// no further check, so a user removed, a token revoked or a rule changed during the delay
// would not stop it. OnWill therefore gives mochi a stand-in on voidTopic, which reaches
// nobody, and the node keeps the real Will here until it is due, checks it again then, and
// publishes it itself.
//
// It is due after the delay, or when the session ends if that comes first (a session
// expiry shorter than the delay, or 0) [MQTT-3.1.3-9]. It is not sent if the client
// connected again meanwhile here (OnSessionEstablished cancels it), or is connected on
// another node when it is due (the store's presence names a newer session) or at two
// presence audits in a row before then (which discard the session, see auditOffline); one
// that came and went in between leaves no trace, and the Will is sent. A node that stops
// sends none of its pending Wills (see willLoop); one that is killed loses them with its
// memory.

// delayedWill is one client's Will, held until it is due.
type delayedWill struct {
	cl      *mqtt.Client   // the connection whose Will it is
	session string         // that connection's presence token
	ident   *auth.Identity // who the client authenticated as: checked again when it is due
	will    mqtt.Will
	props   packets.Properties // the Will's other MQTT 5 properties (clientState.willProps)
	due     time.Time
	index   int // in delayedWills.queue
}

// delayedWills are the Wills waiting to be sent, by client id and in order of their due
// time. Safe for concurrent use.
type delayedWills struct {
	mu    sync.Mutex
	byID  map[string]*delayedWill
	queue willQueue
	wake  chan struct{} // capacity 1: a Will was added, the loop's timer may be late
}

func newDelayedWills() *delayedWills {
	return &delayedWills{byID: map[string]*delayedWill{}, wake: make(chan struct{}, 1)}
}

// add holds w, replacing a Will of the same client id still held.
func (d *delayedWills) add(w *delayedWill) {
	d.mu.Lock()
	if old := d.byID[w.cl.ID]; old != nil {
		heap.Remove(&d.queue, old.index)
	}
	d.byID[w.cl.ID] = w
	heap.Push(&d.queue, w)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// cancel forgets the Will held for client, if any, and reports whether there was one.
func (d *delayedWills) cancel(client string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.byID[client]
	if w == nil {
		return false
	}
	heap.Remove(&d.queue, w.index)
	delete(d.byID, client)
	return true
}

// takeDue removes and returns the Wills due at now, earliest first.
func (d *delayedWills) takeDue(now time.Time) []*delayedWill {
	d.mu.Lock()
	defer d.mu.Unlock()
	var due []*delayedWill
	for len(d.queue) > 0 && !d.queue[0].due.After(now) {
		w := heap.Pop(&d.queue).(*delayedWill)
		delete(d.byID, w.cl.ID)
		due = append(due, w)
	}
	return due
}

// next returns the due time of the earliest Will held; ok is false if none is.
func (d *delayedWills) next() (due time.Time, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.queue) == 0 {
		return time.Time{}, false
	}
	return d.queue[0].due, true
}

func (d *delayedWills) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.byID)
}

// willQueue is a min-heap of Wills by due time (container/heap).
type willQueue []*delayedWill

func (q willQueue) Len() int           { return len(q) }
func (q willQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q willQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *willQueue) Push(x any) {
	w := x.(*delayedWill)
	w.index = len(*q)
	*q = append(*q, w)
}
func (q *willQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	w.index = -1
	return w
}

// holdWill keeps cl's Will, which has a delay, until it is due. OnWill calls it on the
// client's goroutine, after mochi's last read of the connection's properties.
func (n *Node) holdWill(cl *mqtt.Client, st *clientState, will mqtt.Will) {
	if cur, ok := n.mqtt.Clients.Get(cl.ID); ok && cur != cl {
		// A newer connection of the id took the session over here before this one ended:
		// it may have been established (and cancelled nothing) already [MQTT-3.1.3-9].
		n.log.Debug("delayed Will not held: the client is connected again", "client", cl.ID)
		return
	}
	// For MQTT 5 (the only version with a Will delay) mochi ends the session that long
	// after the connection: at once for 0. mochi caps the delay at the session expiry the
	// CONNECT asked for, but not at none (0), at the node's cap (MaxSessionExpiry), or at
	// a DISCONNECT's (0x04, with the Will), which is the one in force by now.
	wait := min(will.WillDelayInterval, cl.Properties.Props.SessionExpiryInterval)
	n.wills.add(&delayedWill{
		cl: cl, session: st.session, ident: st.ident, will: will, props: st.willProps,
		due: time.Now().Add(time.Duration(wait) * time.Second),
	})
}

// willLoop sends the held Wills as they come due, one at a time and earliest first. Once
// the node is stopping it sends no more: the sessions they belong to go with the node
// (mochi keeps sessions in memory only), and a Will sent during the shutdown would race the
// links and the store it needs. What is left is counted in the log when the loop ends.
func (n *Node) willLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if k := n.wills.len(); k > 0 {
				n.log.Info("node stopping: pending delayed Wills dropped, not sent", "wills", k)
			}
			return
		case <-t.C:
		case <-n.wills.wake:
		}
		if n.stopping.Load() {
			continue
		}
		for _, w := range n.wills.takeDue(time.Now()) {
			n.sendWill(w)
		}
		if next, ok := n.wills.next(); ok {
			t.Reset(time.Until(next)) // at once if sending took until then
		}
	}
}

// sendWill publishes a held Will that came due, if it may still be published: its client
// has not connected again, its credentials still admit it, and its rules still let it
// publish to the Will's topic.
func (n *Node) sendWill(w *delayedWill) {
	id, topic := w.cl.ID, w.will.TopicName
	if n.stopping.Load() {
		return // see willLoop
	}
	if cur, ok := n.mqtt.Clients.Get(id); ok && cur != w.cl {
		n.log.Debug("delayed Will not sent: the client is connected again here", "client", id)
		return
	}
	if err := w.ident.Valid(); err != nil || !w.ident.CanPublish(topic) {
		n.metrics.aclDenied.WithLabelValues("will").Inc()
		args := []any{"client", id, "user", w.ident.Username, "topic", topic}
		if err != nil {
			args = append(args, "reason", err)
		}
		n.throttled.log(n.log, slog.LevelInfo, "delayed will dropped: the client may no longer publish to its will topic", args...)
		return
	}
	if n.cluster.reconnected(id, w.session) {
		n.log.Info("delayed Will not sent: the client is connected again", "client", id)
		return
	}
	n.publishWill(w.cl, w.will, w.props)
	n.log.Debug("delayed Will sent", "client", id, "topic", topic)
}

// willPacket is the PUBLISH of a Will: what mochi keeps of it (topic, payload, QoS, retain
// flag, user properties) and the MQTT 5 properties it drops, which props keep from the
// CONNECT [MQTT-3.1.3-10]. Its Message Expiry Interval runs from now, capped at maxExpiry
// seconds as mochi caps a client's publish. It is a version 5 packet, as the forwarded ones
// are (see forwarded.packet): mochi expires a retained copy only then.
func willPacket(id string, will mqtt.Will, props packets.Properties, maxExpiry int64) packets.Packet {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: will.Qos, Retain: will.Retain},
		TopicName:       will.TopicName,
		Payload:         will.Payload,
		Properties:      props,
		PacketID:        uint16(will.Qos), // mochi checks that a QoS>0 publish has one; it is not used
		ProtocolVersion: 5,
		Origin:          id,
		Created:         time.Now().Unix(),
	}
	pk.Properties.User = will.User
	if e := min(int64(props.MessageExpiryInterval), maxExpiry); e > 0 {
		pk.Properties.MessageExpiryInterval = uint32(e)
		pk.Expiry = pk.Created + e
	}
	return pk
}

// publishWill publishes cl's Will, checked by the caller, here and to the rest of the
// cluster. mochi publishes an inline client's packet without an ACL check and without
// OnPublish's cluster routing (willSent does that, once), to its subscribers here,
// retaining it if asked. The client is named after the Will's own, as mochi's Will packet
// is, so that a no-local subscription of that client's session skips it.
func (n *Node) publishWill(cl *mqtt.Client, will mqtt.Will, props packets.Properties) {
	pk := willPacket(cl.ID, will, props, n.mqtt.Options.Capabilities.MaximumMessageExpiryInterval)
	if err := n.mqtt.InjectPacket(inlineClient(n.mqtt, cl.ID), pk); err != nil {
		n.log.Warn("a Will could not be published", "client", cl.ID, "topic", will.TopicName, "error", err)
		return
	}
	n.cluster.willSent(cl, pk)
}
