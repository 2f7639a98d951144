package node

import (
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/wire"
)

const (
	// shareAckWait bounds how long a member here may hold a shared message unacknowledged
	// before the sending node is told to try another member.
	shareAckWait = 20 * time.Second
	// shareDeadline bounds how long a publishing node keeps trying to hand a shared
	// message to a member, when none takes it.
	shareDeadline = 2 * time.Minute
	// shareRetry is the pause before trying again once every member failed.
	shareRetry = 500 * time.Millisecond
)

// shareWait is one shared-group delivery to a member on this node.
type shareWait struct {
	id      uint64
	group   string
	qos     byte
	member  *mqtt.Client // the connection mochi was told to send it to; nil if none could take it
	tracked bool         // sent at QoS 1 or 2: settled by the member's acknowledgement
	done    bool
	reply   func(wire.Result)
	timer   *time.Timer
}

// shareWaits are the shared-group deliveries to members here, until each is settled.
type shareWaits struct {
	mu   sync.Mutex
	next uint64
	byID map[uint64]*shareWait
}

func (s *shareWaits) init() { s.byID = map[uint64]*shareWait{} }

// deliver hands f to one connected member of its group on this node. QoS 0 (or a member
// subscribed at QoS 0) is settled once mochi queued it for the member; QoS 1 and 2 once
// the member acknowledged it, or refused when the member goes first.
func (s *shareWaits) deliver(c *cluster, f forwarded, reply func(wire.Result)) {
	// mochi asks OnSelectSubscribers (where the member is chosen, and everyone else left
	// out) only for a topic with shared subscribers: without a member of the group in
	// mochi's index the injection would reach the plain subscribers instead.
	if k, _ := c.table.LocalCount(f.group); k == 0 || !c.hasMember(f.group, f.topic) {
		reply(wire.Result{Status: wire.StatusNotHere, Detail: "no member of the group here"})
		return
	}
	w := &shareWait{group: f.group, qos: f.qos, reply: reply}
	s.mu.Lock()
	s.next++
	w.id = s.next
	s.byID[w.id] = w
	s.mu.Unlock()

	pk := f.packet()
	pk.Connect.ClientIdentifier = tagShared + strconv.FormatUint(w.id, 10)
	err := c.n.mqtt.InjectPacket(c.shareClient, pk)

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case w.done:
		// The member acknowledged it already.
	case err != nil || w.member == nil:
		s.finish(w, wire.Result{Status: wire.StatusNotHere, Detail: "no member of the group connected here"})
	case !w.tracked:
		s.finish(w, wire.Result{Status: wire.StatusDelivered})
	default:
		w.timer = time.AfterFunc(shareAckWait, func() {
			s.settle(w.id, wire.Result{Status: wire.StatusFailed, Detail: "the member did not acknowledge it in time"})
		})
	}
}

// finish answers w once; the caller holds mu.
func (s *shareWaits) finish(w *shareWait, r wire.Result) {
	if w.done {
		return
	}
	w.done = true
	delete(s.byID, w.id)
	if w.timer != nil {
		w.timer.Stop()
	}
	w.reply(r)
}

// settle answers the delivery id, if it is still waiting.
func (s *shareWaits) settle(id uint64, r wire.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.byID[id]; w != nil {
		s.finish(w, r)
	}
}

// memberGone refuses every delivery waiting on the connection cl: the sending node tries
// another member (the member may still get it again, as a QoS 1 duplicate, if its session
// resumes).
func (s *shareWaits) memberGone(cl *mqtt.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.byID {
		if w.member == cl {
			s.finish(w, wire.Result{Status: wire.StatusNotHere, Detail: "the member disconnected before acknowledging it"})
		}
	}
}

func (s *shareWaits) failAll(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.byID {
		s.finish(w, wire.Result{Status: wire.StatusFailed, Detail: why})
	}
}

// selectMember makes mochi send a shared-group delivery to one connected member of its
// group, and to nobody else.
func (s *shareWaits) selectMember(c *cluster, subs *mqtt.Subscribers, tag string) {
	members := map[string]packets.Subscription{}
	var w *shareWait
	if id, ok := shareID(tag); ok {
		s.mu.Lock()
		w = s.byID[id]
		s.mu.Unlock()
	}
	if w != nil {
		members = subs.Shared[w.group]
	}
	clear(subs.Shared)
	subs.Subscriptions = map[string]packets.Subscription{}
	subs.InlineSubscriptions = nil
	for id, sub := range members {
		cl, ok := c.n.mqtt.Clients.Get(id)
		if !ok || cl.Closed() || cl.Net.Conn == nil {
			continue
		}
		subs.SharedSelected = map[string]packets.Subscription{id: sub}
		s.mu.Lock()
		w.member = cl
		w.tracked = w.qos > 0 && sub.Qos > 0
		s.mu.Unlock()
		return
	}
}

// hasMember reports whether mochi holds a connected member of group for topic.
func (c *cluster) hasMember(group, topic string) bool {
	for id := range c.n.mqtt.Topics.Subscribers(topic).Shared[group] {
		if cl, ok := c.n.mqtt.Clients.Get(id); ok && !cl.Closed() && cl.Net.Conn != nil {
			return true
		}
	}
	return false
}

// shareID reads the delivery id from a tagged packet.
func shareID(tag string) (uint64, bool) {
	rest, ok := strings.CutPrefix(tag, tagShared)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	return id, err == nil
}

// sharedSend is a QoS 1 or 2 message for a shared group that a client of this node
// published, until a member acknowledged it.
type sharedSend struct {
	f        forwarded
	tried    map[string]bool // nodes that failed it since the last round
	deadline time.Time
}

// sendShared sends a QoS 1 or 2 shared-group message to a member somewhere in the
// cluster, and to another when that one fails (see trySharedSend).
func (c *cluster) sendShared(f forwarded, group string) {
	f.flags |= fwdShared
	f.group, f.track = group, 1
	c.trySharedSend(&sharedSend{f: f, tried: map[string]bool{}, deadline: time.Now().Add(shareDeadline)})
}

// trySharedSend hands ss to one member's node, picked among those not tried this round;
// it ends when a member acknowledged it, the node closes, or the deadline passed.
func (c *cluster) trySharedSend(ss *sharedSend) {
	select {
	case <-c.stop:
		return
	default:
	}
	if time.Now().After(ss.deadline) {
		c.metrics.shared.WithLabelValues("dropped").Inc()
		c.log.Warn("no member of a shared subscription took a message in time; dropped",
			"group", ss.f.group, "topic", ss.f.topic)
		return
	}
	var counts map[string]int
	_, groups := c.table.Match(ss.f.topic)
	for _, g := range groups {
		if g.Key == ss.f.group {
			counts = g.Nodes
		}
	}
	to := pickNode(counts, ss.tried)
	if to == "" {
		// Every member failed it (or the group has none now): a new round after a pause.
		clear(ss.tried)
		time.AfterFunc(shareRetry, func() { c.trySharedSend(ss) })
		return
	}
	done := func(r wire.Result, err error) {
		if err == nil && r.Status == wire.StatusDelivered {
			c.metrics.shared.WithLabelValues("delivered").Inc()
			return
		}
		c.metrics.shared.WithLabelValues("retried").Inc()
		ss.tried[to] = true
		c.trySharedSend(ss)
	}
	body := ss.f.append(nil)
	if to == c.n.cfg.ID {
		c.receiverFor(to).add(inItem{body: body, reply: func(r wire.Result) { done(r, nil) }})
		return
	}
	l := c.link(to)
	if l == nil {
		done(wire.Result{}, errLinkClosed)
		return
	}
	l.enqueue(outItem{body: body, done: done})
}
