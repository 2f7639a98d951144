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
	if err := establish(l.id, conn); err != nil {
		l.log.Debug("connection ended", "remote", conn.RemoteAddr().String(), "error", err)
	}
}

// Close stops accepting and closes the listener's clients through closeClients.
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		l.l.Close()
		closeClients(l.id)
	})
}

// Accepting reports whether the accept loop is running.
func (l *listener) Accepting() bool { return l.accepting.Load() }
