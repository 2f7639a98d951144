package node

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-mqtt/switchboard/inbox"
	"github.com/switchboard-mqtt/switchboard/routes"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// The cluster makes the nodes one MQTT broker for publish/subscribe:
//
//   - Every node keeps the cluster's subscription table (package routes): its own
//     sessions' filters, pushed to every other live node over the wire protocol, and theirs,
//     kept under the epoch they were pushed with and dropped when that epoch leaves the live
//     set (the coordinator's member watch is the one source of who is alive, so a dead
//     node's routes go with its ephemeral entry). A SUBACK is sent once every reachable
//     live node has the new filter (bounded by RouteSyncTimeout), so a publish on any node
//     after the SUBACK reaches the subscriber.
//   - A publish is forwarded, once, to each node with a matching subscriber, on that node's
//     link (one queue per node, so one publisher's messages keep their order), and that node
//     hands it to its subscribers as mochi does for its own publishes: per-subscription QoS
//     downgrade, retain-as-published, subscription identifiers, no-local.
//   - A shared subscription's message goes to one member in the cluster: the publishing
//     node picks the node (weighted by its members), that node picks the member. At QoS 1
//     and 2 the publishing node keeps the message until the member acknowledged it, and
//     sends it to another member when the member's session or node goes first.
//   - Retained messages live in the store (they survive any node) and every node keeps a
//     copy in mochi, so a subscriber on any node gets them as from a single broker.
//
// Directed messages (inbox topics) never take this path: the inbox subscription of a
// client is not a route.
type cluster struct {
	n     *Node
	log   *slog.Logger
	table *routes.Table

	fwdClient   *mqtt.Client // injections of forwarded publishes are made as this client
	shareClient *mqtt.Client // and of shared-group deliveries as this one

	mu     sync.Mutex
	links  map[string]*link     // to the other live nodes, by id
	in     map[string]*receiver // from the other nodes (and this one, for shared), by sender id
	closed bool

	shares shareWaits // deliveries to a member here, awaiting its acknowledgement

	ret retainedCopies

	metrics clusterMetrics
	stop    chan struct{}
	wg      sync.WaitGroup
}

type clusterMetrics struct {
	forwards *prometheus.CounterVec // by result
	shared   *prometheus.CounterVec // by result
	routes   prometheus.GaugeFunc
}

// inlineClient is a client of the node's own through which it injects publishes into
// mochi. It speaks MQTT 5: InjectPacket gives the packet the client's version, and mochi
// expires only messages of version 5 (see forwarded.packet).
func inlineClient(m *mqtt.Server, id string) *mqtt.Client {
	cl := m.NewClient(nil, "local", id, true)
	cl.Properties.ProtocolVersion = 5
	return cl
}

func newCluster(n *Node) *cluster {
	c := &cluster{
		n:           n,
		log:         n.log.With("component", "cluster"),
		table:       routes.New(n.cfg.ID),
		fwdClient:   inlineClient(n.mqtt, "$sb/forwarded"),
		shareClient: inlineClient(n.mqtt, "$sb/shared"),
		links:       map[string]*link{},
		in:          map[string]*receiver{},
		stop:        make(chan struct{}),
	}
	c.shares.init()
	c.ret.init()
	c.metrics.forwards = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_node_forwards_total",
		Help: "Publishes forwarded between nodes: sent, received, dropped (the link's queue was full or the node unreachable), failed.",
	}, []string{"result"})
	c.metrics.shared = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_node_shared_total",
		Help: "Shared-subscription messages this node sent for its publishers: delivered, retried (sent to another member), dropped (no member took it in time).",
	}, []string{"result"})
	c.metrics.routes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchboard_node_route_peers",
		Help: "Other nodes whose subscription routes this node holds.",
	}, func() float64 { return float64(len(c.table.Peers())) })
	n.registry.MustRegister(c.metrics.forwards, c.metrics.shared, c.metrics.routes)
	return c
}

// start follows the member watch; the node calls it once its watcher runs.
func (c *cluster) start(ctx context.Context) {
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.watchMembers(ctx) }()
	go func() { defer c.wg.Done(); c.ret.syncLoop(ctx, c) }()
}

// close stops the links and receivers and fails what waits on them.
func (c *cluster) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	links, ins := c.links, c.in
	c.links, c.in = map[string]*link{}, map[string]*receiver{}
	c.mu.Unlock()
	close(c.stop)
	for _, l := range links {
		l.close()
	}
	for _, r := range ins {
		r.close()
	}
	c.wg.Wait()
	c.shares.failAll("node shutting down")
}

// watchMembers keeps one link per other live node and drops the routes of nodes that left
// the live set (under the epoch they had).
func (c *cluster) watchMembers(ctx context.Context) {
	for {
		changed := c.n.members.Changed()
		c.reconcile()
		select {
		case <-changed:
		case <-ctx.Done():
			return
		case <-c.stop:
			return
		}
	}
}

func (c *cluster) reconcile() {
	live := map[string]int64{}
	// Links are closed after mu is released: closing one fails what it holds, and a
	// shared-group message's failure is sent again on another link, which takes mu.
	var gone []*link
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	for _, m := range c.n.members.Members() {
		if m.ID == c.n.cfg.ID || m.InternalAddr == "" {
			continue
		}
		live[m.ID] = m.Epoch
		l := c.links[m.ID]
		if l != nil && (l.addr != m.InternalAddr || l.epoch != m.Epoch) {
			gone = append(gone, l) // a new registration: a new link sends it everything
			l = nil
		}
		if l == nil {
			c.links[m.ID] = c.newLink(m.ID, m.InternalAddr, m.Epoch)
		}
	}
	for id, l := range c.links {
		if _, ok := live[id]; !ok {
			gone = append(gone, l)
			delete(c.links, id)
		}
	}
	c.mu.Unlock()
	for _, l := range gone {
		l.close()
	}
	left := false
	for id, epoch := range c.table.Peers() {
		if e, ok := live[id]; !ok || e != epoch {
			c.table.Drop(id, epoch)
			left = true
			c.log.Info("dropped the routes of a node that left the live set", "peer", id, "epoch", epoch)
		}
	}
	if left {
		// It may have stored retained messages whose forwards it never sent.
		c.ret.kick()
	}
}

func (c *cluster) link(id string) *link {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.links[id]
}

// liveLinks returns the links to every other live node.
func (c *cluster) liveLinks() []*link {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*link, 0, len(c.links))
	for _, l := range c.links {
		out = append(out, l)
	}
	return out
}

// isRoute reports whether a subscription of client to filter is one the cluster routes:
// every filter but the client's own inbox, which only directed messages use, and its own
// probe topic, which a monitor's probe publishes to on the same connection. (A probe's
// SUBACK that waited for route sync would wait on every other node: one frozen peer then
// made every node fail its end-to-end probe, and the monitor suspect itself.)
func (c *cluster) isRoute(client, filter string) bool {
	return filter != inbox.Topic(c.n.cfg.InboxPrefix, client) && filter != inbox.ProbeTopicPrefix+client
}

// subscribed records the filters mochi granted to cl and waits (bounded) until every
// reachable live node has them.
func (c *cluster) subscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	var ver uint64
	for i, sub := range pk.Filters {
		if i < len(codes) && codes[i] >= 0x80 {
			continue
		}
		if c.isRoute(cl.ID, sub.Filter) {
			ver = c.table.Subscribe(cl.ID, sub.Filter)
		}
	}
	if ver == 0 {
		return
	}
	c.wake()
	ctx, cancel := context.WithTimeout(context.Background(), c.n.cfg.RouteSyncTimeout)
	defer cancel()
	c.awaitSynced(ctx, ver)
}

func (c *cluster) unsubscribed(cl *mqtt.Client, pk packets.Packet) {
	before := c.table.Version()
	ver := before
	for _, sub := range pk.Filters {
		ver = c.table.Unsubscribe(cl.ID, sub.Filter)
	}
	if ver != before {
		c.wake()
	}
}

// sessionEnded forgets the routes of a session mochi deleted.
func (c *cluster) sessionEnded(client string) {
	before := c.table.Version()
	if c.table.Forget(client) != before {
		c.wake()
	}
}

// wake tells every link that the local filters changed.
func (c *cluster) wake() {
	for _, l := range c.liveLinks() {
		l.poke()
	}
}

// awaitSynced waits until every link reachable now has pushed local version ver, or ctx ends.
func (c *cluster) awaitSynced(ctx context.Context, ver uint64) {
	for _, l := range c.liveLinks() {
		l.awaitSynced(ctx, ver)
	}
}

// applyRoutes takes another node's filters, if it is live under the epoch it sends them with.
func (c *cluster) applyRoutes(from string, epoch int64, body []byte) wire.Result {
	u, err := decodeRoutes(body)
	if err != nil {
		return wire.Result{Status: wire.StatusBadRequest, Detail: err.Error()}
	}
	if _, ok := c.n.members.Live(from, epoch); !ok {
		// Not (yet) in our live set: taking its routes now could keep them after it left.
		// The sender tries again.
		return wire.Result{Status: wire.StatusStaleEpoch, Detail: "the sender is not live under that epoch here"}
	}
	if !c.table.Apply(from, epoch, u.full, u.counts) {
		return wire.Result{Status: wire.StatusStaleEpoch, Detail: "routes of an older epoch"}
	}
	if _, ok := c.n.members.Live(from, epoch); !ok {
		// It left the live set while we applied: the member watch may have dropped its
		// routes before they were in the table.
		c.table.Drop(from, epoch)
		return wire.Result{Status: wire.StatusStaleEpoch, Detail: "the sender left the live set"}
	}
	return wire.Result{Status: wire.StatusDelivered}
}

// Tags a publish carries through mochi in Connect.ClientIdentifier, a field a PUBLISH never
// encodes and mochi copies with the packet to every subscriber's copy.
const (
	tagLocalGroups = "\x00sb-local\x00" // the shared groups a local publish goes to here, \x00-separated
	tagShared      = "\x00sb-share\x00" // a shared-group delivery, by its id in shareWaits
)

// publish routes a publish of a client of this node to the rest of the cluster and returns
// the packet mochi goes on with (tagged with the shared groups it delivers to here). It
// fails only for a retained publish the store could not keep.
func (c *cluster) publish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	here, grouped, err := c.route(cl, &pk, false)
	if err != nil || !grouped {
		return pk, err
	}
	pk.Connect.ClientIdentifier = tagLocalGroups + strings.Join(here, "\x00")
	return pk, nil
}

// route forwards a publish made here (a client's, or a Will) to the nodes with
// matching subscribers (every node, for a retained one, after the store kept it), and sends
// each matching shared group's copy to one member: tracked until acknowledged at QoS 1 and 2,
// and at QoS 0 to a node picked by its members — here returns the groups picked for this
// node, which mochi serves. A Will has been given to this node's members already (publishWill
// publishes it straight to its subscribers), so its groups with members here are left out,
// and a store failure does not stop it. grouped reports whether any group matched.
func (c *cluster) route(cl *mqtt.Client, pk *packets.Packet, will bool) (here []string, grouped bool, err error) {
	nodes, groups := c.table.Match(pk.TopicName)
	retain := pk.FixedHeader.Retain
	if !retain && len(nodes) == 0 && len(groups) == 0 {
		return nil, false, nil
	}
	f := fromPacket(*pk, cl.ID, time.Now().Unix())
	var links []*link
	if retain {
		v, err := c.ret.store(c, *pk)
		if err != nil && !will {
			return nil, false, err
		}
		f.version = v
		tagVersion(pk, v) // mochi keeps it with its version
		if will && v > 0 {
			// mochi retained the Will before telling us: its copy gets the version too.
			c.n.mqtt.Topics.RetainMessage(pk.Copy(false))
		}
		links = c.liveLinks() // every node keeps the retained message
	} else {
		for _, id := range nodes {
			if l := c.link(id); l != nil {
				links = append(links, l)
			}
		}
	}
	if len(links) > 0 {
		body := f.append(nil)
		if retain && !will {
			c.forwardAll(links, body)
		} else {
			for _, l := range links {
				l.enqueue(outItem{body: body})
			}
		}
	}
	f.flags &^= fwdRetain
	for _, g := range groups {
		switch {
		case will && g.Nodes[c.n.cfg.ID] > 0:
			// mochi gave it to a member here
		case f.qos > 0:
			c.sendShared(f, g.Key)
		default:
			to := pickNode(g.Nodes, nil)
			if to == c.n.cfg.ID {
				here = append(here, g.Key)
			} else if l := c.link(to); l != nil {
				sf := f
				sf.flags |= fwdShared
				sf.group = g.Key
				l.enqueue(outItem{body: sf.append(nil)})
			}
		}
	}
	return here, len(groups) > 0, nil
}

// forwardAll forwards a retained publish to every node and waits (at most
// RouteSyncTimeout) until each took it: after the publisher's PUBACK a subscriber on any
// reachable node finds it, even if this node dies at once. A node that did not answer
// reads it from the store (at the latest when this node leaves the live set); its link
// lags, and is not waited for again until it answers.
func (c *cluster) forwardAll(links []*link, body []byte) {
	var wg sync.WaitGroup
	answered := make([]atomic.Bool, len(links))
	for i, l := range links {
		if !l.waits() {
			l.enqueue(outItem{body: body})
			continue
		}
		wg.Add(1)
		l.enqueue(outItem{body: body, done: func(wire.Result, error) { answered[i].Store(true); wg.Done() }})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(c.n.cfg.RouteSyncTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		for i, l := range links {
			if !answered[i].Load() {
				l.mu.Lock()
				l.lagLocked("a retained message")
				l.mu.Unlock()
			}
		}
	case <-c.stop:
	}
}

// pickNode picks a node from counts (members by node), weighted by its members, leaving
// out those in skip; "" when none is left.
func pickNode(counts map[string]int, skip map[string]bool) string {
	total := 0
	for id, k := range counts {
		if !skip[id] && k > 0 {
			total += k
		}
	}
	if total == 0 {
		return ""
	}
	r := rand.IntN(total)
	for id, k := range counts {
		if skip[id] || k <= 0 {
			continue
		}
		if r < k {
			return id
		}
		r -= k
	}
	return ""
}

// selectSubscribers narrows mochi's choice of subscribers for a publish to what the
// cluster decided: a forwarded publish goes to this node's non-shared subscribers only, a
// shared-group delivery to the one member chosen here, a local publish to the shared
// groups the cluster left to this node.
func (c *cluster) selectSubscribers(subs *mqtt.Subscribers, pk packets.Packet) *mqtt.Subscribers {
	tag := pk.Connect.ClientIdentifier
	switch {
	case pk.Origin == c.fwdClient.ID:
		clear(subs.Shared)
	case pk.Origin == c.shareClient.ID:
		c.shares.selectMember(c, subs, tag)
	case strings.HasPrefix(tag, tagLocalGroups):
		keep := map[string]bool{}
		for _, k := range strings.Split(tag[len(tagLocalGroups):], "\x00") {
			keep[k] = true
		}
		for k := range subs.Shared {
			if !keep[k] {
				delete(subs.Shared, k)
			}
		}
	}
	return subs
}

// Forward takes another node's items: its routes, and publishes for our subscribers.
func (h handler) Forward(_ context.Context, f wire.Forward, reply func(int, wire.Result)) {
	c := h.n.cluster
	for i, it := range f.Items {
		switch it.Kind {
		case itemRoutes:
			reply(i, c.applyRoutes(f.From, f.Epoch, it.Body))
		case itemPublish:
			c.receiverFor(f.From).add(inItem{body: it.Body, reply: func(r wire.Result) { reply(i, r) }})
		default:
			reply(i, wire.Result{Status: wire.StatusBadRequest, Detail: "unknown item kind"})
		}
	}
}

// clusterPublish is OnPublish's last step for a client's publish: the cluster's routing.
// A retained publish the store could not keep is refused as mochi refuses one the ACL
// denies: an error PUBACK for MQTT 5 at QoS 1 and 2, the connection closed for 3.1.1 (its
// client sends it again after reconnecting), dropped at QoS 0.
func (n *Node) clusterPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	out, err := n.cluster.publish(cl, pk)
	if err == nil {
		return out, nil
	}
	switch {
	case pk.FixedHeader.Qos == 0:
	case cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1:
		return pk, packets.ErrUnspecifiedError // mochi answers PUBACK 0x80
	case cl.Properties.ProtocolVersion == 5:
		// mochi would answer a refused QoS 2 publish with a PUBACK too: a PUBREC it is.
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: pk.PacketID,
			ReasonCode: packets.ErrUnspecifiedError.Code,
			Properties: packets.Properties{ReasonString: errRetainedNotStored.Error()},
		})
	default:
		cl.Stop(err)
	}
	return pk, packets.ErrRejectPacket
}

// sessionOver reports whether a connection mochi ends also ends its session's routes and
// shared-group deliveries: not when a newer connection of the client took the session over
// (mochi hands the subscriptions on to it, and still tells us the old one ended).
func (n *Node) sessionOver(cl *mqtt.Client) bool {
	if cl.IsTakenOver() {
		return false
	}
	cur, ok := n.mqtt.Clients.Get(cl.ID)
	return !ok || cur == cl
}

// willSent passes a Will published here (publishWill) on to the rest of the cluster.
func (c *cluster) willSent(cl *mqtt.Client, pk packets.Packet) {
	if _, _, err := c.route(cl, &pk, true); err != nil {
		c.log.Warn("a Will could not be passed on", "client", cl.ID, "topic", pk.TopicName, "error", err)
	}
}

// reconnected reports whether the store has client connected again under a session other
// than session, on any node: [MQTT-3.1.3-9] a delayed Will is then not sent. A store that
// does not answer says no (the Will is sent).
func (c *cluster) reconnected(client, session string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), c.n.cfg.StoreTimeout)
	defer cancel()
	p, _, err := c.n.store.Lookup(ctx, client)
	return err == nil && p.Online() && p.Session != session
}
