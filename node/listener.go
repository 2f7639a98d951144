package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/prometheus/client_golang/prometheus"
)

// listener is one of the node's MQTT listeners: MQTT over TCP (or TLS), or over WebSocket
// (see websocket.go), each optionally behind the PROXY protocol (proxyproto.go). It
// replaces mochi's so that a panic while handling one client's packets (mochi has no
// recovery of its own; see mochi issue #501, a truncated MQTT 5 SUBSCRIBE) ends that
// connection only, so that the readiness report can tell whether the accept loop is alive,
// and so that what a client holds before it has authenticated is bounded (see preauth.go):
// a connection beyond the pending caps is closed before any goroutine starts for it, and an
// admitted one gets ConnectTimeout for its PROXY header, TLS handshake, WebSocket upgrade
// and CONNECT, whose declared size is checked before mochi allocates it.
type listener struct {
	id      string
	l       net.Listener
	log     *slog.Logger
	onPanic func(conn net.Conn, v any) // cleans up after a recovered panic
	onEnd   func(err error)            // sees why each connection ended (limit refusals)
	onDone  func(conn net.Conn)        // releases what the connection still holds, however it ended
	refused func(limit string)         // counts a connection the listener refused, by limit
	// closeAll disconnects every client when the listener closes. mochi's own callback
	// (closeListenerClients) can deadlock in v2.7.9: Clients.GetByListener takes the read
	// lock and calls Len, which takes it again, so a writer waiting in between blocks both.
	closeAll func()
	limiter  *rateLimiter // new connections per source address

	pending        *pendingSet
	connectTimeout time.Duration // accept to the end of the CONNECT, TLS handshake included
	maxConnect     uint32        // largest CONNECT remaining length
	auth           *authGuard    // bounds the credential checks (see authlimit.go)

	// tls, if set, is the server side of TLS, done by the listener after the PROXY header
	// (a listener given an already-TLS net.Listener does the handshake of its *tls.Conn).
	tls *tls.Config
	// proxy, if set, requires a PROXY protocol header from a trusted source on every
	// connection (see proxyproto.go).
	proxy *proxyPolicy
	// websocket makes the listener serve MQTT over WebSocket (see websocket.go).
	websocket bool

	accepting atomic.Bool
	closeOnce sync.Once
	handlers  sync.WaitGroup
}

// newMQTTListener wraps the bound MQTT listener l (plain TCP; tlsCfg, if set, is done on
// each connection) with the node's limits and registers its gauges.
func (n *Node) newMQTTListener(l net.Listener, tlsCfg *tls.Config) *listener {
	lim := n.cfg.Limits
	exempt := addrSet(lim.PerIPExempt)
	ml := &listener{id: "mqtt", l: l, log: n.log.With("component", "mqtt-listener"),
		onPanic: n.onPanic, onEnd: n.connectionEnded, onDone: n.connectionDone, closeAll: n.disconnectAll,
		refused:        func(limit string) { n.metrics.limits.WithLabelValues(limit).Inc() },
		pending:        newPendingSet(lim.MaxPending, lim.MaxPendingPerIP, lim.MaxClients+int64(lim.MaxPending), exempt),
		connectTimeout: lim.ConnectTimeout,
		maxConnect:     lim.MaxConnectSize,
		auth:           newAuthGuard(lim.AuthConcurrency, lim.AuthFailuresPerIP, exempt),
		tls:            tlsCfg,
	}
	if n.cfg.ProxyProtocol {
		ml.proxy = &proxyPolicy{trusted: n.cfg.ProxyTrusted}
	}
	if lim.ConnRatePerIP > 0 {
		ml.limiter = newRateLimiter(lim.ConnRatePerIP, lim.ConnBurstPerIP, exempt)
	}
	n.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_node_mqtt_pending_connections",
			Help: "MQTT connections accepted and not yet authenticated or answered (bounded by --max-pending-connects).",
		}, func() float64 { p, _ := ml.pending.counts(); return float64(p) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_node_mqtt_open_connections",
			Help: "Open MQTT connections, authenticated or not (bounded by --max-clients plus --max-pending-connects).",
		}, func() float64 { _, o := ml.pending.counts(); return float64(o) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "switchboard_node_auth_checks_total",
			Help: "Credential checks run for CONNECTs with a username or password (each a bcrypt comparison for a password).",
		}, func() float64 { return float64(ml.auth.checks.Load()) }),
	)
	return ml
}

// newSideListener is another listener of the node's (WebSocket, WebSocket over TLS) on the
// bound l: its own id, TLS and framing, but the MQTT listener's pending set, rate limiter
// and credential guard, so one client address has one budget whichever port it uses.
func (n *Node) newSideListener(id string, l net.Listener, tlsCfg *tls.Config, websocket bool) *listener {
	m := n.mqttLis
	return &listener{id: id, l: l, log: n.log.With("component", id+"-listener"),
		onPanic: m.onPanic, onEnd: m.onEnd, onDone: m.onDone, closeAll: func() {},
		refused: m.refused, limiter: m.limiter, pending: m.pending,
		connectTimeout: m.connectTimeout, maxConnect: m.maxConnect, auth: m.auth,
		tls: tlsCfg, proxy: m.proxy, websocket: websocket,
	}
}

var _ listeners.Listener = (*listener)(nil)

func (l *listener) ID() string      { return l.id }
func (l *listener) Address() string { return l.l.Addr().String() }
func (l *listener) Protocol() string {
	switch {
	case l.websocket && l.tls != nil:
		return "wss"
	case l.websocket:
		return "ws"
	}
	return "tcp"
}

// Init is a no-op: the socket is bound in Node.Start so a busy port fails start-up early.
// Init counts the listener as accepting from when mochi adds it: its socket is bound, so
// the kernel queues connections until the accept loop, which mochi starts on a goroutine of
// its own, takes them (a readiness check right after Start must not see a loop that is
// merely not scheduled yet as one that stopped).
func (l *listener) Init(*slog.Logger) error {
	l.accepting.Store(true)
	return nil
}

// Serve accepts connections until Close.
func (l *listener) Serve(establish listeners.EstablishFn) {
	defer l.accepting.Store(false)
	var backoff time.Duration
	for {
		conn, err := l.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off instead of spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed", "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		ip := addrIP(conn.RemoteAddr())
		if l.proxy != nil {
			// The client's address comes in the PROXY header, read on the connection's own
			// goroutine under the connect deadline; its per-address limits apply then.
			if !l.proxy.trusts(conn.RemoteAddr()) {
				l.refused("proxy_untrusted")
				l.log.Debug("connection refused: PROXY protocol required and the source is not trusted", "remote", ip)
				conn.Close()
				continue
			}
			ip = ""
		} else if l.limiter != nil && !l.limiter.allow(ip) {
			conn.Close()
			l.onEnd(errRateLimited)
			continue
		}
		pc, limit := l.pending.admit(conn, ip)
		if pc == nil {
			if limit != "" {
				l.refused(limit)
			}
			conn.Close()
			continue
		}
		l.handlers.Add(1)
		go l.handle(establish, pc)
	}
}

func (l *listener) handle(establish listeners.EstablishFn, conn *preauthConn) {
	defer l.handlers.Done()
	defer l.pending.done(conn)
	defer func() {
		if v := recover(); v != nil {
			l.log.Error("recovered panic while handling a client; closing that connection",
				"remote", conn.RemoteAddr().String(), "panic", v, "stack", string(debug.Stack()))
			conn.Close()
			l.onPanic(conn, v)
			if l.onDone != nil {
				l.onDone(conn) // release what the connection holds (its CONNECT lock)
			}
		}
	}()
	if err := l.preauth(conn); err != nil {
		switch {
		case errors.Is(err, errConnectTooLarge):
			l.refused("connect_size")
		case errors.Is(err, errRateLimited):
			l.onEnd(err)
		case errors.Is(err, errPerIPLimit):
			l.refused("pending_connects_per_ip")
		case errors.Is(err, errProxyHeader):
			l.refused("proxy_header")
		case errors.Is(err, errConnectProtocol):
			refuseProtocolError(conn, err)
		case isTimeout(err):
			l.refused("connect_timeout")
		}
		conn.Close()
		l.log.Debug("connection refused before its CONNECT", "remote", conn.RemoteAddr().String(), "error", err)
		return
	}
	err := establish(l.id, conn)
	conn.Close() // mochi closes it too; whatever happened inside, it is over
	if err != nil {
		l.log.Debug("connection ended", "remote", conn.RemoteAddr().String(), "error", err)
		if conn.pending.Load() && isTimeout(err) {
			l.refused("connect_timeout") // the CONNECT's body did not arrive in time
		}
	}
	l.onEnd(err)
	if l.onDone != nil {
		l.onDone(conn)
	}
}

// isTimeout reports whether err is a deadline's (crypto/tls does not always wrap
// os.ErrDeadlineExceeded so that errors.Is finds it).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// preauth sets the pre-authentication deadline and, under it, reads the PROXY header (then
// applies the per-address limits to the client's address), does the TLS handshake (a
// tls.Conn would otherwise do it lazily inside mochi's first read), the WebSocket upgrade,
// and reads the CONNECT (its fixed header first, so that a declared size over the limit is
// refused before more is read) and checks the properties mochi does not (connectprops.go);
// conn then replays it to mochi. The deadline stays in force until mochi sets its
// keepalive deadline after OnConnect.
func (l *listener) preauth(conn *preauthConn) error {
	deadline := time.Now().Add(l.connectTimeout)
	_ = conn.SetDeadline(deadline)
	if l.proxy != nil {
		pc, err := readProxyHeader(conn.Conn)
		if err != nil {
			return err
		}
		conn.Conn = pc
		addr := pc.RemoteAddr()
		if l.limiter != nil && !l.limiter.allow(addrIP(addr)) {
			return errRateLimited
		}
		if limit := l.pending.assign(conn, addrIP(addr)); limit != "" {
			return errPerIPLimit
		}
	}
	if tc, ok := conn.Conn.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
	} else if l.tls != nil {
		tc := tls.Server(conn.Conn, l.tls)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		conn.Conn = tc
	}
	if l.websocket {
		ws, err := upgradeWebSocket(conn.Conn)
		if err != nil {
			return fmt.Errorf("websocket upgrade: %w", err)
		}
		conn.Conn = ws
		_ = conn.SetDeadline(deadline) // the upgrade clears the connection's deadlines
	}
	pk, err := readConnect(conn.Conn, l.maxConnect)
	if err != nil {
		if errors.Is(err, errConnectProtocol) {
			return err
		}
		return fmt.Errorf("read CONNECT: %w", err)
	}
	conn.prefix = pk
	return nil
}

// Close stops accepting and disconnects the listener's clients (with closeAll, not
// mochi's callback: see closeAll).
func (l *listener) Close(listeners.CloseFn) {
	l.closeOnce.Do(func() {
		l.l.Close()
		l.pending.closeAll()
		l.closeAll()
	})
}

// Accepting reports whether the accept loop is running.
func (l *listener) Accepting() bool { return l.accepting.Load() }

var (
	// errRateLimited ends a connection refused by the per-address rate limit.
	errRateLimited = errors.New("connection rate limit for this address exceeded")
	// errPerIPLimit ends a connection whose address (known from its PROXY header) already
	// holds its share of pending connections.
	errPerIPLimit = errors.New("pending connections for this address exceeded")
)

// rateLimiter is a token bucket per source IP address; exempt addresses have none.
type rateLimiter struct {
	rate   float64 // tokens a second
	burst  float64
	exempt addrSet

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int, exempt addrSet) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), exempt: exempt, buckets: map[string]*bucket{}}
}

func (r *rateLimiter) allow(ip string) bool {
	if r.exempt.contains(ip) {
		return true
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.swept) > time.Minute {
		// Forget addresses whose buckets have refilled: they cost nothing to recreate.
		for k, b := range r.buckets {
			if b.tokens+now.Sub(b.last).Seconds()*r.rate >= r.burst {
				delete(r.buckets, k)
			}
		}
		r.swept = now
	}
	b := r.buckets[ip]
	if b == nil {
		b = &bucket{tokens: r.burst, last: now}
		r.buckets[ip] = b
	}
	b.tokens = min(r.burst, b.tokens+now.Sub(b.last).Seconds()*r.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// addrSet is a list of address prefixes: the sources the per-address limits exempt.
type addrSet []netip.Prefix

// contains reports whether ip (an address as addrIP gives it) is in one of the prefixes.
func (s addrSet) contains(ip string) bool {
	if len(s) == 0 {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
