package node

import (
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// listener is the node's MQTT TCP listener. It replaces mochi's so that a panic while
// handling one client's packets (mochi has no recovery of its own; see mochi issue #501, a
// truncated MQTT 5 SUBSCRIBE) ends that connection only, and so that the readiness report
// can tell whether the accept loop is alive.
type listener struct {
	id      string
	l       net.Listener
	log     *slog.Logger
	onPanic func(conn net.Conn, v any) // cleans up after a recovered panic
	onEnd   func(err error)            // sees why each connection ended (limit refusals)
	onDone  func(conn net.Conn)        // releases what the connection still holds, however it ended
	// closeAll disconnects every client when the listener closes. mochi's own callback
	// (closeListenerClients) can deadlock in v2.7.9: Clients.GetByListener takes the read
	// lock and calls Len, which takes it again, so a writer waiting in between blocks both.
	closeAll func()
	limiter  *rateLimiter // new connections per source address

	accepting atomic.Bool
	closeOnce sync.Once
	handlers  sync.WaitGroup
}

var _ listeners.Listener = (*listener)(nil)

func (l *listener) ID() string       { return l.id }
func (l *listener) Address() string  { return l.l.Addr().String() }
func (l *listener) Protocol() string { return "tcp" }

// Init is a no-op: the socket is bound in Node.Start so a busy port fails start-up early.
func (l *listener) Init(*slog.Logger) error { return nil }

// Serve accepts connections until Close.
func (l *listener) Serve(establish listeners.EstablishFn) {
	l.accepting.Store(true)
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
		if l.limiter != nil && !l.limiter.allow(conn.RemoteAddr()) {
			conn.Close()
			l.onEnd(errRateLimited)
			continue
		}
		l.handlers.Add(1)
		go l.handle(establish, conn)
	}
}

func (l *listener) handle(establish listeners.EstablishFn, conn net.Conn) {
	defer l.handlers.Done()
	defer func() {
		if v := recover(); v != nil {
			l.log.Error("recovered panic while handling a client; closing that connection",
				"remote", conn.RemoteAddr().String(), "panic", v, "stack", string(debug.Stack()))
			conn.Close()
			l.onPanic(conn, v)
		}
	}()
	err := establish(l.id, conn)
	if err != nil {
		l.log.Debug("connection ended", "remote", conn.RemoteAddr().String(), "error", err)
	}
	l.onEnd(err)
	if l.onDone != nil {
		l.onDone(conn)
	}
}

// Close stops accepting and disconnects the listener's clients (with closeAll, not
// mochi's callback: see closeAll).
func (l *listener) Close(listeners.CloseFn) {
	l.closeOnce.Do(func() {
		l.l.Close()
		l.closeAll()
	})
}

// Accepting reports whether the accept loop is running.
func (l *listener) Accepting() bool { return l.accepting.Load() }

// errRateLimited ends a connection refused by the per-address rate limit.
var errRateLimited = errors.New("connection rate limit for this address exceeded")

// rateLimiter is a token bucket per source IP address.
type rateLimiter struct {
	rate  float64 // tokens a second
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

func (r *rateLimiter) allow(a net.Addr) bool {
	ip := a.String()
	if tcp, ok := a.(*net.TCPAddr); ok {
		ip = tcp.IP.String()
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
