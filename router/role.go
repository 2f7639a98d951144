package router

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/switchboard-mqtt/switchboard/internal/tlsconf"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/watcher"
)

// RoleCoordinator is what a router role needs of the coordinator: the member watch its live
// set follows, and the marks and elections its dashboard reads. coord.Coordinator provides
// it; its methods may be called concurrently.
type RoleCoordinator interface {
	watcher.MemberWatch
	Cluster
}

// Deps are what a router role is given. Close closes Listener (required), none of the
// others; if Start fails, Listener is still the caller's to close.
type Deps struct {
	Coord RoleCoordinator
	Store store.Store
	// Listener is the API's. Start caps it at Config.HTTP.MaxConnections, and serves TLS on
	// it when TLS is set; Close closes it.
	Listener net.Listener
	// TLS, if set, is the API's server side of TLS.
	TLS *tls.Config
	// Tokens, if set, guard the API and the dashboard's data; the role reloads them from
	// their file every TokenReload while it runs. Nil serves the API without tokens.
	Tokens *Tokens
	Logger *slog.Logger
}

// TokenReload is how often a running router re-reads its token file.
const TokenReload = 2 * time.Second

// shutdownTimeout bounds Close's wait for the requests in flight.
const shutdownTimeout = 10 * time.Second

// Server is a running router role: its live set, its router, its dashboard and the HTTP
// server that serves them on its listener. Start returns it serving; Close stops it.
type Server struct {
	w    *watcher.Watcher
	r    *Router
	http *http.Server
	addr net.Addr

	cancel   context.CancelFunc // ends the token reloads
	tokens   sync.WaitGroup
	served   chan struct{} // closed when Serve has returned
	serveMu  sync.Mutex
	serveErr error

	closeOnce sync.Once
	closeErr  error
}

// Start starts a router role on deps.Listener: it follows the live set (returning once the
// first set has arrived, or when ctx ends first), routes by it and serves the API and the
// dashboard (/ui) beside it. An invalid cfg starts nothing. ctx bounds the start only.
func Start(ctx context.Context, cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	w, err := watcher.Start(ctx, deps.Coord, log)
	if err != nil {
		return nil, err
	}
	r, err := New(cfg, deps.Store, w, log)
	if err != nil {
		w.Close()
		return nil, err
	}
	tlsconf.RegisterExpiry(r.Registry(), "api", deps.TLS)
	tlsconf.RegisterExpiry(r.Registry(), "internal", cfg.WireTLS) // its client certificate, with mutual TLS
	ui, err := NewDashboard(DefaultDashboardConfig(), r, deps.Coord, log)
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	h := ui.Handler()
	if deps.Tokens != nil {
		h = ui.AuthHandler(deps.Tokens)
	}
	s := &Server{w: w, r: r, http: r.HTTPServer(h), addr: deps.Listener.Addr(),
		served: make(chan struct{})}
	s.http.RegisterOnShutdown(ui.Close)     // its live streams end, so Shutdown need not wait for them
	s.http.RegisterOnShutdown(r.EndStreams) // so do the receipt event streams
	// The cap counts TCP connections, under TLS, so a handshake that never completes holds
	// a slot only until the read header timeout.
	l := netutil.LimitListener(deps.Listener, cfg.HTTP.MaxConnections)
	if deps.TLS != nil {
		l = tls.NewListener(l, deps.TLS)
	}
	tctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if deps.Tokens != nil {
		s.tokens.Add(1)
		go func() {
			defer s.tokens.Done()
			deps.Tokens.Watch(tctx, TokenReload)
		}()
	}
	go func() {
		defer close(s.served)
		if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("router HTTP server", "error", err)
			s.serveMu.Lock()
			s.serveErr = err
			s.serveMu.Unlock()
		}
	}()
	return s, nil
}

// Addr is the address the API listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// Done is closed when the role stops serving: at Close, or earlier if its listener fails
// (Err says why; Close must still be called).
func (s *Server) Done() <-chan struct{} { return s.served }

// Err is why the role stopped serving before Close, or nil.
func (s *Server) Err() error {
	s.serveMu.Lock()
	defer s.serveMu.Unlock()
	return s.serveErr
}

// Close stops the role: the HTTP server (waiting a while for the requests in flight), the
// token reloads, the router and its live set; after it the role calls neither the store nor
// the coordinator. It returns what the server's shutdown returned. Idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		s.closeErr = s.http.Shutdown(ctx)
		<-s.served
		s.cancel()
		s.tokens.Wait()
		s.r.Close()
		s.w.Close()
	})
	return s.closeErr
}
