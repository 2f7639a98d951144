// Package node is a Switchboard broker node: an MQTT 3.1.1/5.0 broker on mochi-mqtt that
// registers itself in the coordinator as an ephemeral member, records which clients are
// connected to it (presence), accepts directed messages for them from routers over the wire
// protocol, drains a client's mailbox when it becomes ready, and serves /healthz for the
// load balancer.
package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/healthz"
	"github.com/switchboard-mqtt/switchboard/internal/version"
	"github.com/switchboard-mqtt/switchboard/lease"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/watcher"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// Node is one running broker node.
type Node struct {
	cfg   Config
	log   *slog.Logger
	coord Coordinator
	store store.Store
	// looping: start got as far as the background loops. Close waits for the receipt
	// loop's answers only then: without it, nothing records them, and a Start refused
	// early (a busy port) waited twice the store timeout for nothing.
	looping bool

	mqtt     *mqtt.Server
	mqttLis  *listener
	sideLis  []*listener // WebSocket listeners, if any
	wireLis  net.Listener
	wireSrv  *wire.Server
	peers    *wire.Pool
	adminLis net.Listener
	admin    *http.Server
	members  *watcher.Watcher
	cluster  *cluster // publish/subscribe across the nodes
	reg      coord.Registration
	member   coord.Member
	instance string // coord.Member.Instance, set before the admin endpoint answers

	registry *prometheus.Registry
	metrics  *metrics
	clients  *clientTable
	sessions *sessionIdents // who each session authenticated as, online or not
	wills    *delayedWills  // Wills with a delay, until they are due (see willdelay.go)
	// offlineSeen are the offline sessions whose client the last audit pass found
	// connected on another node, with that presence (auditOffline); the audit's only.
	offlineSeen map[*mqtt.Client]elsewhere
	health      atomic.Pointer[healthz.Report]

	lease       *lease.Holder    // the delivery lease: nothing is sent to clients without it
	teller      *lease.Teller    // queues into mailboxes and tells other nodes
	remover     *remover         // deletes acknowledged messages' mailbox copies
	receipter   *receipter       // records delivery receipts before their messages are settled
	priorities  store.Priorities // the mailboxes' high-priority lanes; nil when the store has none
	queuedBytes atomic.Int64     // bytes of directed messages held unanswered
	sendWG      sync.WaitGroup
	connLocks   keyedMutex // one CONNECT at a time per client id
	connMu      sync.Mutex
	connecting  map[*mqtt.Client]*connectHold // what each CONNECT under way holds, by connection
	moving      mover                         // moves clients off while fenced
	throttled   *logThrottle                  // refusals a flood could repeat endlessly
	// writeBufs holds the buffers senders encode PUBLISH packets into (*[]byte): a
	// sender lives for one burst of work, often a single message, and a buffer of its
	// own would be allocated and grown for each.
	writeBufs sync.Pool

	epoch      atomic.Int64 // the live epoch; 0 while not live (fenced, withdrawn, stopping)
	quarantine quarantine
	fp         failpoints
	gate       atomic.Pointer[gateState]
	stopping   atomic.Bool
	withdrawn  atomic.Bool // quarantined and leaving the live set: deliver nothing
	epochMu    sync.Mutex  // orders setLiveEpoch against a withdrawal (withdraw)

	cancel    context.CancelFunc // ends the background goroutines
	wg        sync.WaitGroup     // background goroutines (status loop, health, drains, kicks)
	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed when Close has finished
}

// gateState says why new MQTT connections are refused; nil means they are accepted.
type gateState struct {
	reason   string
	redirect bool // quarantined: tell MQTT 5 clients to use another server
}

// Coordinator is what a node needs of the coordinator: to register itself, and the live
// set of the other nodes, which its watcher follows. coord.Coordinator provides it.
type Coordinator interface {
	coord.Registrar
	watcher.MemberWatch
}

var _ Coordinator = coord.Coordinator(nil)

// Deps are what a node is given. It closes neither Coord nor Store.
type Deps struct {
	Coord  Coordinator
	Store  store.Store
	Logger *slog.Logger
}

// Start binds the node's listeners, starts the broker, registers in the coordinator and
// returns once the node is registered (or waiting in quarantine). It fails with a clear
// error for a busy port or an id already live in the cluster; nothing is left running then.
func Start(ctx context.Context, cfg Config, deps Deps) (*Node, error) {
	c, st, log := deps.Coord, deps.Store, deps.Logger
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	n := &Node{
		cfg:        cfg,
		log:        log.With("node", cfg.ID),
		coord:      c,
		store:      st,
		registry:   prometheus.NewRegistry(),
		clients:    newClientTable(),
		sessions:   newSessionIdents(),
		wills:      newDelayedWills(),
		remover:    newRemover(),
		receipter:  newReceipter(st),
		throttled:  newLogThrottle(10, 50),
		connecting: map[*mqtt.Client]*connectHold{},
		done:       make(chan struct{}),
	}
	if ps, ok := st.(store.Priorities); ok {
		n.priorities = ps
	}
	n.gate.Store(&gateState{reason: "starting"})
	n.metrics = newMetrics(n.registry, n)
	bgctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	if err := n.start(ctx, bgctx); err != nil {
		n.Close(context.Background())
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx, bgctx context.Context) error {
	cfg := n.cfg
	var err error
	mqttL, err := net.Listen("tcp", cfg.MQTTAddr)
	if err != nil {
		return &FieldError{Field: "MQTTAddr", Value: cfg.MQTTAddr, Err: err}
	}
	boundMQTT := mqttL.Addr()
	// TLS is done per connection by the listener, after any PROXY header.
	n.mqttLis = n.newMQTTListener(mqttL, cfg.MQTTTLS)
	for _, s := range []struct {
		id, flag, addr string
		tls            *tls.Config
	}{{"ws", "--ws", cfg.WSAddr, nil}, {"wss", "--wss", cfg.WSSAddr, cfg.WSTLS}} {
		if s.addr == "" {
			continue
		}
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("%s %s: %w", s.flag, s.addr, err)
		}
		n.sideLis = append(n.sideLis, n.newSideListener(s.id, l, s.tls, true))
	}
	if n.wireLis, err = net.Listen("tcp", cfg.InternalAddr); err != nil {
		return &FieldError{Field: "InternalAddr", Value: cfg.InternalAddr, Err: err}
	}
	boundWire := n.wireLis.Addr()
	if cfg.InternalTLS != nil {
		n.wireLis = tls.NewListener(n.wireLis, cfg.InternalTLS)
	}
	if n.adminLis, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		return &FieldError{Field: "AdminAddr", Value: cfg.AdminAddr, Err: err}
	}
	// The admin endpoint answers from here: until the node has registered, /healthz says so
	// with the process's instance. Register waits up to 1.5 session timeouts when the entry
	// of a predecessor (killed, restarted at once on the same ports) is still live, and a
	// monitor probing that entry must be able to tell this process from the one it names.
	n.instance = randomToken()
	var started atomic.Bool
	n.admin = &http.Server{Handler: n.adminHandler(&started), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = n.admin.Serve(n.adminLis) }()

	n.mqtt = mqtt.New(&mqtt.Options{
		Capabilities:            n.capabilities(),
		ClientNetReadBufferSize: cfg.Limits.ReadBuffer,
		Logger:                  mochiLogger(n.log.With("component", "mqtt")),
		SysTopicResendInterval:  10,
	})
	n.cluster = newCluster(n)
	if err := n.mqtt.AddHook(&hook{n: n}, nil); err != nil {
		return fmt.Errorf("add hook: %w", err)
	}
	for _, l := range append([]*listener{n.mqttLis}, n.sideLis...) {
		if err := n.mqtt.AddListener(l); err != nil {
			return fmt.Errorf("add listener %s: %w", l.id, err)
		}
	}
	if err := n.mqtt.Serve(); err != nil {
		return fmt.Errorf("start broker: %w", err)
	}

	n.wireSrv = wire.NewServer(handler{n}, wire.ServerOptions{Token: cfg.WireToken, Logger: n.log.With("component", "wire")})
	go func() { _ = n.wireSrv.Serve(n.wireLis) }()
	n.peers = wire.NewPool(wire.DialOptions{Token: cfg.WireToken, TLS: cfg.PeerTLS, Logger: n.log.With("component", "peers")})

	n.checkHealth(ctx)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.healthLoop(bgctx) }()

	if n.members, err = watcher.Start(ctx, n.coord, n.log); err != nil {
		return err
	}
	n.teller = lease.NewTeller(lease.TellerConfig{
		Self: cfg.ID, Local: n.localNotice, MailboxLimit: cfg.MailboxLimit,
	}, n.store, n.members, n.peers, n.log)
	if n.lease, err = lease.Start(lease.Config{
		Node: cfg.ID, Duration: cfg.Lease.Duration, Interval: cfg.Lease.Interval,
	}, n.store, n.applyNotices, n.log); err != nil {
		return err
	}
	n.wg.Add(6)
	n.looping = true
	go func() { defer n.wg.Done(); n.auditLoop(bgctx) }()
	go func() { defer n.wg.Done(); n.authLoop(bgctx) }()
	go func() { defer n.wg.Done(); n.willLoop(bgctx) }()
	go func() { defer n.wg.Done(); n.leaseLoop(bgctx) }()
	go func() { defer n.wg.Done(); n.receiptLoop(bgctx) }()
	go func() { defer n.wg.Done(); n.removeLoop(bgctx) }()

	internalAddr := advertised(boundWire, cfg.Advertise)
	if cfg.AdvertiseInternal != "" {
		internalAddr = cfg.AdvertiseInternal
	}
	n.member = coord.Member{
		ID:           cfg.ID,
		MQTTAddr:     advertised(boundMQTT, cfg.Advertise),
		InternalAddr: internalAddr,
		AdminAddr:    advertised(n.adminLis.Addr(), cfg.Advertise),
		Version:      version.String(),
		StartedAt:    time.Now().UTC().Truncate(time.Millisecond),
		Instance:     n.instance,
		LeaseMillis:  cfg.Lease.Duration.Milliseconds(),
		MQTTProxy:    cfg.ProxyProtocol,
	}
	if n.reg, err = n.coord.Register(ctx, n.member); err != nil {
		if errors.Is(err, coord.ErrDuplicate) {
			return fmt.Errorf("node id %q is already live in the cluster: %w", cfg.ID, err)
		}
		return fmt.Errorf("register %s: %w", cfg.ID, err)
	}
	n.cluster.start(bgctx)
	st, _ := n.reg.Status()
	live := n.applyStatus(bgctx, st, 0)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.statusLoop(bgctx, live) }()
	started.Store(true) // the full admin endpoints read everything above
	n.log.Info("node started", "mqtt", n.member.MQTTAddr, "internal", n.member.InternalAddr,
		"admin", n.member.AdminAddr, "state", st.State.String(), "epoch", st.Epoch)
	for _, l := range n.sideLis {
		n.log.Info("listening for MQTT over WebSocket", "listener", l.id, "addr", advertised(l.l.Addr(), cfg.Advertise))
	}
	return nil
}

func (n *Node) capabilities() *mqtt.Capabilities {
	l := n.cfg.Limits
	c := mqtt.NewDefaultServerCapabilities()
	c.MaximumPacketSize = l.MaxPacketSize
	c.MaximumClients = l.MaxClients
	c.MaximumSessionExpiryInterval = l.MaxSessionExpiry
	c.MaximumMessageExpiryInterval = int64(l.MaxMessageExpiry / time.Second)
	c.TopicAliasMaximum = l.TopicAliasMax
	c.ReceiveMaximum = l.ReceiveMaximum
	c.MaximumInflight = l.MaxInflight
	c.MaximumClientWritesPending = l.WritesPending
	return c
}

// Member is this node's registration data (with the addresses it actually listens on).
func (n *Node) Member() coord.Member {
	m := n.member
	if n.reg != nil {
		st, _ := n.reg.Status()
		m.Epoch = st.Epoch
	}
	return m
}

// WebSocketAddrs returns the bound addresses of the node's WebSocket listeners, by id ("ws",
// "wss"); empty when it has none.
func (n *Node) WebSocketAddrs() map[string]string {
	m := map[string]string{}
	for _, l := range n.sideLis {
		m[l.id] = advertised(l.l.Addr(), n.cfg.Advertise)
	}
	return m
}

// Registration is the node's registration in the coordinator.
func (n *Node) Registration() coord.Registration { return n.reg }

// statusLoop follows the registration: epoch changes, fencing and quarantine marks. last
// is the epoch the node went live under at start (0 if it did not): a new one after it is
// a re-registration, whose clients must be confirmed under it.
func (n *Node) statusLoop(ctx context.Context, last int64) {
	for {
		st, changed := n.reg.Status()
		last = n.applyStatus(ctx, st, last)
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// applyStatus makes the node act on its registration status and returns the epoch it is
// live under (or the previous one while not live).
func (n *Node) applyStatus(ctx context.Context, st coord.Status, last int64) int64 {
	n.metrics.regState.Set(float64(st.State))
	if n.stopping.Load() {
		return last
	}
	marked := st.Mark != nil && (st.Live() || st.State == coord.Quarantined)
	if marked {
		// Out of the load balancer at once (healthz 503, new connections refused); out of
		// the live set after the grace period; clients moved off after that.
		n.gate.Store(&gateState{reason: "quarantined", redirect: true})
		n.quarantine.begin(ctx, n, st.Mark, st.Live())
	} else {
		n.quarantine.end(n)
	}
	if st.State != coord.Fenced {
		n.moving.stop()
	}
	switch {
	case st.Live():
		was := n.epoch.Load()
		if !n.setLiveEpoch(st.Epoch) {
			return last // withdrawing: the entry may be gone already
		}
		if !marked {
			n.gate.Store(nil)
		}
		if was == 0 && st.Epoch == last {
			// Live again under the same epoch (a quarantine released before its entry
			// went): the senders that stopped while the node was not live start again.
			// (Under a new epoch the reassertion below wakes each once it is confirmed.)
			for _, c := range n.clients.all() {
				n.wake(c)
			}
		}
		if st.Epoch == last && was != 0 {
			return last // live all along
		}
		// The links push our routes under the new epoch, or what changed while the node
		// was not live (a push is skipped then).
		n.cluster.wake()
		if last != 0 {
			// Registered again under a new epoch: routers dropped the old one, so tell the
			// store where our clients are now and deliver what queued meanwhile. Or live
			// again under the same one: a reassertion the withdrawal cut short confirms
			// the clients it had not reached.
			n.wg.Add(1)
			go func() { defer n.wg.Done(); n.reassertAll(ctx, st.Epoch) }()
		}
		return st.Epoch
	case st.State == coord.Quarantined:
		n.epoch.Store(0)
		n.gate.Store(&gateState{reason: "quarantined", redirect: true})
	default:
		n.epoch.Store(0)
		if !marked {
			n.gate.Store(&gateState{reason: st.State.String(), redirect: st.State == coord.Fenced})
		}
		if st.State == coord.Fenced {
			// Cut off from the coordinator for longer than it may keep us: nothing is
			// delivered here now, so the clients must go where their messages can reach
			// them (MQTT 5 redirect, 3.1.1 disconnect), at a bounded rate.
			n.moving.begin(ctx, n, "fenced")
		}
	}
	return last
}

// setLiveEpoch makes epoch the live one unless the node is withdrawing from the live set;
// it reports whether it did. With withdraw it is one step, so a withdrawal that starts
// while the status loop sets the epoch cannot be undone by it.
func (n *Node) setLiveEpoch(epoch int64) bool {
	n.epochMu.Lock()
	defer n.epochMu.Unlock()
	if n.withdrawn.Load() {
		n.epoch.Store(0)
		return false
	}
	n.epoch.Store(epoch)
	return true
}

// withdraw stops every delivery before the node leaves the live set (quarantine).
func (n *Node) withdraw() {
	n.epochMu.Lock()
	defer n.epochMu.Unlock()
	n.withdrawn.Store(true)
	n.epoch.Store(0)
}

// Close shuts the node down cleanly: it leaves the live set at once, refuses new work,
// disconnects its clients with MQTT 5 reason 0x8B (server shutting down) and waits, bounded
// by ctx and ShutdownTimeout, for their presence to be cleared. Idempotent.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, n.cfg.ShutdownTimeout)
		defer cancel()
		n.stopping.Store(true)
		n.quarantine.end(n)
		n.gate.Store(&gateState{reason: "shutting down"})
		n.epoch.Store(0)
		var errs []error
		if n.reg != nil {
			if err := n.reg.Deregister(ctx); err != nil {
				errs = append(errs, fmt.Errorf("deregister: %w", err))
			}
		}
		if n.mqtt != nil {
			_ = n.mqtt.Close() // disconnects every client with 0x8B
			done := make(chan struct{})
			go func() {
				n.mqttLis.handlers.Wait()
				for _, l := range n.sideLis {
					l.handlers.Wait()
				}
				close(done)
			}()
			select {
			case <-done:
			case <-ctx.Done():
				errs = append(errs, errors.New("clients did not finish disconnecting in time"))
			}
		} else if n.mqttLis != nil {
			n.mqttLis.l.Close()
		}
		for _, l := range n.sideLis {
			l.l.Close() // mochi closed those it was given; this covers a failed start
		}
		// Every connection is closed: wait for the spills of what they left unanswered.
		n.moving.stop()
		spilled := make(chan struct{})
		go func() { n.sendWG.Wait(); close(spilled) }()
		select {
		case <-spilled:
		case <-ctx.Done():
			errs = append(errs, errors.New("unacknowledged messages were not all queued in time"))
		}
		// The answers waiting for their receipts go out before the routers' channel
		// closes (a router that loses one queues the message again: a duplicate). Bounded:
		// a store that is down keeps its receipts, whose answers went out already.
		if n.receipter.on() && n.looping {
			recorded := make(chan struct{})
			n.receipter.after(func() { close(recorded) })
			select {
			case <-recorded:
			case <-ctx.Done():
			case <-time.After(2 * n.cfg.StoreTimeout):
			}
		}
		if n.cluster != nil {
			n.cluster.close()
		}
		if n.wireSrv != nil {
			_ = n.wireSrv.Close()
		} else if n.wireLis != nil {
			n.wireLis.Close()
		}
		if n.peers != nil {
			_ = n.peers.Close()
		}
		if n.members != nil {
			n.members.Close()
		}
		if n.admin != nil {
			_ = n.admin.Shutdown(ctx)
		} else if n.adminLis != nil {
			n.adminLis.Close()
		}
		n.cancel()
		n.wg.Wait()
		if n.lease != nil {
			n.lease.Close()
		}
		n.closeErr = errors.Join(errs...)
		n.log.Info("node stopped")
		close(n.done)
	})
	return n.closeErr
}

// Done is closed once Close has stopped the node.
func (n *Node) Done() <-chan struct{} { return n.done }

// disconnectAll disconnects every connected client with reason 0x8B (server shutting down).
func (n *Node) disconnectAll() {
	for _, cl := range n.mqtt.Clients.GetAll() {
		if cl.Net.Conn != nil && !cl.Closed() {
			_ = n.mqtt.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// advertised turns a bound address into one other machines can dial.
func advertised(a net.Addr, host string) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if !tcp.IP.IsUnspecified() {
		return tcp.String()
	}
	if host == "" {
		host, _ = os.Hostname()
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}

func randomToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
