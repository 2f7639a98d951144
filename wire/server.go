package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Server serves Handler calls to wire clients. Its methods are safe for concurrent use.
// Each connection has two goroutines: a reader, which calls the Handler, and a writer.
type Server struct {
	h    Handler
	opts ServerOptions

	closing chan struct{} // closed by Close

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]context.CancelFunc
	wg        sync.WaitGroup // one per connection goroutine
}

// NewServer returns a Server calling h. Zero or invalid option fields take the defaults of
// DefaultServerOptions; call opts.Validate first to reject invalid ones instead.
func NewServer(h Handler, opts ServerOptions) *Server {
	return &Server{
		h:         h,
		opts:      opts.withDefaults(),
		closing:   make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]context.CancelFunc),
	}
}

// Serve accepts connections on l until l fails or the server is closed, and returns nil
// after Close. Serve may be called for several listeners; Close closes them all.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = l.Close()
		return nil
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept: %w", err)
			}
			// Out of file descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.opts.Logger.Warn("wire accept failed; retrying", "err", err, "delay", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.closing:
				t.Stop()
			}
			continue
		}
		delay = 0
		s.start(nc)
	}
}

// start runs a goroutine serving nc, owned by the server.
func (s *Server) start(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = nc.Close()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.conns[nc] = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serveConn(ctx, nc)
		cancel()
		_ = nc.Close()
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
	}()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close closes every listener and connection, cancels the contexts the Handler got and
// waits for every goroutine the server started (each connection's reader and writer; not
// goroutines the Handler started, whose later replies are discarded). It is idempotent;
// clients see their pending calls fail with ErrConnLost.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
		for l := range s.listeners {
			_ = l.Close()
		}
		for nc, cancel := range s.conns {
			cancel()
			_ = nc.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
