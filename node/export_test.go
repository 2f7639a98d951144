package node

import (
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/wire"
)

// DropForTest calls the node's OnPublishDropped hook as mochi does when a subscriber's
// outbound queue is full, for the client connected with id.
func (n *Node) DropForTest(id string, pk packets.Packet) bool {
	st := n.clients.get(id)
	if st == nil {
		return false
	}
	(&hook{n: n}).OnPublishDropped(st.cl, pk)
	return true
}

// ConnectedForTest is how many connections mochi holds; it drops once mochi has run a
// connection's OnDisconnect.
func (n *Node) ConnectedForTest() int64 { return atomic.LoadInt64(&n.mqtt.Info.ClientsConnected) }

// ReconcileWithQueuedShareForTest queues, on the link to peer, a shared-group message
// whose failure is sent again to another member (as sendShared queues them), then makes
// the member watch's next reconcile see peer under a new registration, which closes that
// link. The returned channel closes when reconcile returns.
func (n *Node) ReconcileWithQueuedShareForTest(peer, topic, group string) <-chan struct{} {
	c := n.cluster
	l := c.link(peer)
	f := forwarded{qos: 1, topic: topic, payload: []byte("x"), flags: fwdShared, group: group, track: 1}
	ss := &sharedSend{f: f, tried: map[string]bool{}, deadline: time.Now().Add(time.Minute)}
	l.mu.Lock()
	l.queue = append(l.queue, outItem{body: f.append(nil), done: func(wire.Result, error) {
		ss.tried[peer] = true
		c.trySharedSend(ss)
	}})
	l.mu.Unlock()
	c.mu.Lock()
	l.epoch = -1
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.reconcile(); close(done) }()
	return done
}

// DeliverSharedForTest hands this node a shared-group message for group from another
// node, after recording in the cluster table a member of group here that mochi does not
// have (as between an UNSUBSCRIBE and the table's update), and returns the answer.
func (n *Node) DeliverSharedForTest(topic, group, payload string) wire.Result {
	c := n.cluster
	c.table.Subscribe("ghost-member", group)
	f := forwarded{qos: 1, topic: topic, payload: []byte(payload), flags: fwdShared, group: group, track: 1}
	res := make(chan wire.Result, 1)
	c.shares.deliver(c, f, func(r wire.Result) { res <- r })
	return <-res
}

// PeerFiltersForTest is how many filters of peer this node's table holds.
func (n *Node) PeerFiltersForTest(peer string) int { return n.cluster.table.PeerFilters(peer) }

// LaggingForTest reports whether SUBACKs on this node have stopped waiting for peer, whose
// link let a route sync run out.
func (n *Node) LaggingForTest(peer string) bool {
	l := n.cluster.link(peer)
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lagging
}

// SessionFiltersForTest is how many filters mochi's session of client holds, and how many
// filters this node routes for its own sessions.
func (n *Node) SessionFiltersForTest(client string) (session, routed int) {
	if cl, ok := n.mqtt.Clients.Get(client); ok {
		session = cl.State.Subscriptions.Len()
	}
	local, _ := n.cluster.table.Local()
	return session, len(local)
}

// ACLDeniedForTest reads switchboard_node_acl_denied_total for action.
func (n *Node) ACLDeniedForTest(action string) float64 {
	var m dto.Metric
	if err := n.metrics.aclDenied.WithLabelValues(action).Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// InflightForTest is how many messages mochi holds for client's session (0 without one).
func (n *Node) InflightForTest(client string) int {
	cl, ok := n.mqtt.Clients.Get(client)
	if !ok {
		return 0
	}
	return cl.State.Inflight.Len()
}

// RetainedForTest reports whether mochi holds a retained message on topic.
func (n *Node) RetainedForTest(topic string) bool {
	pk, ok := n.mqtt.Topics.Retained.Get(topic)
	return ok && len(pk.Payload) > 0
}

// HasSessionForTest reports whether mochi holds a session (connected or not) for client.
func (n *Node) HasSessionForTest(client string) bool {
	_, ok := n.mqtt.Clients.Get(client)
	return ok
}
