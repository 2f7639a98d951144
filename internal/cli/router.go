package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/watcher"
)

func runRouter(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("router", e)
	cfg := router.DefaultConfig()
	var (
		lo     logOptions
		zo     coordOptions
		ro     redisOptions
		listen string
		id     string
	)
	lo.register(fs)
	zo.register(fs)
	ro.register(fs)
	host, _ := os.Hostname()
	fs.StringVar(&listen, "listen", "127.0.0.1:8080", "HTTP API listen address")
	fs.StringVar(&id, "id", "router-"+host, "this router's name (in elections)")
	registerRouterFlags(fs, &cfg)
	var (
		apiTLS, internalTLS tlsOptions
		tokensFile          string
		noAuth              bool
	)
	apiTLS.register(fs, "tls-", "the HTTP API (HTTPS only when set)")
	internalTLS.register(fs, "internal-", "the internal router/node channel")
	fs.StringVar(&tokensFile, "api-tokens", "", "file of bearer tokens the API accepts (one per line, `name token`); reloaded on change")
	fs.BoolVar(&noAuth, "no-auth", false, "serve the API without tokens (development only)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	if tokensFile == "" && !noAuth {
		return usagef("--api-tokens FILE is required (or --no-auth for development)")
	}
	serverTLS, err := apiTLS.server("tls-")
	if err != nil {
		return err
	}
	if apiTLS.ca != "" {
		return usagef("--tls-ca is not used by the API; clients authenticate with bearer tokens")
	}
	if cfg.WireTLS, err = internalTLS.client("internal-"); err != nil {
		return err
	}
	log, err := lo.logger(e.stderr)
	if err != nil {
		return err
	}
	if err := zo.validate(); err != nil {
		return err
	}
	st, err := ro.open(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := zo.open(ctx, log)
	if err != nil {
		return err
	}
	defer c.Close()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	var tokens *router.Tokens
	if tokensFile != "" {
		if tokens, err = router.LoadTokens(tokensFile, log); err != nil {
			l.Close()
			return usageError{err}
		}
		go tokens.Watch(ctx, 2*time.Second)
	} else {
		log.Warn("the API accepts requests without a token (--no-auth)")
	}
	if serverTLS != nil {
		l = tls.NewListener(l, serverTLS)
	}
	srv, err := startRouter(ctx, cfg, c, st, l, id, tokens, log)
	if err != nil {
		l.Close()
		return err
	}
	log.Info("router listening", "addr", l.Addr().String())
	<-ctx.Done()
	return srv.close()
}

func registerRouterFlags(fs interface {
	DurationVar(*time.Duration, string, time.Duration, string)
	IntVar(*int, string, int, string)
	StringVar(*string, string, string, string)
}, cfg *router.Config) {
	d := router.DefaultConfig()
	fs.StringVar(&cfg.InboxPrefix, "inbox-prefix", d.InboxPrefix, "default topic prefix: a message to c goes to <prefix>c")
	fs.DurationVar(&cfg.DefaultTTL, "default-ttl", d.DefaultTTL, "expiry of a message that gives none")
	fs.DurationVar(&cfg.MaxTTL, "max-ttl", d.MaxTTL, "longest expiry accepted")
	fs.IntVar(&cfg.MaxPayload, "max-payload", d.MaxPayload, "largest payload accepted (bytes)")
	fs.IntVar(&cfg.MailboxLimit, "mailbox-limit", d.MailboxLimit, "most messages in one client's mailbox")
	fs.IntVar(&cfg.MaxBatch, "max-batch", d.MaxBatch, "most messages in one batch request")
	fs.DurationVar(&cfg.AnswerGrace, "answer-grace", d.AnswerGrace,
		"how much longer than the max wait to wait for a node's answer before queueing the message (the outcome is then unknown)")
	fs.DurationVar(&cfg.ClockSkew, "clock-skew", 0, "testing: pretend this machine's wall clock is off by this much (expiry never depends on it)")
	fs.DurationVar(&cfg.MaxMaxWait, "max-max-wait", d.MaxMaxWait, "largest max_wait a request may ask for")
	fs.DurationVar(&cfg.MaxWait, "max-wait", d.MaxWait,
		"how long a request waits for an online client's acknowledgement before the message is queued and answered queued (a request's max_wait overrides it)")
	fs.StringVar(&cfg.WireToken, "cluster-token", "", "shared secret for the router/node channel")
}

// routerServer is a running router with its HTTP server and reaper.
type routerServer struct {
	r       *router.Router
	w       *watcher.Watcher
	http    *http.Server
	cancel  context.CancelFunc
	stopped chan struct{}
}

// startRouter starts the router role on l: the same code `router` and `up` run.
func startRouter(ctx context.Context, cfg router.Config, c coord.Coordinator, st store.Store, l net.Listener, id string,
	tokens *router.Tokens, log *slog.Logger) (*routerServer, error) {
	w, err := watcher.Start(ctx, c, log)
	if err != nil {
		return nil, err
	}
	r, err := router.New(cfg, st, w, log)
	if err != nil {
		w.Close()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	h := r.Handler()
	if tokens != nil {
		h = r.AuthHandler(tokens)
	}
	s := &routerServer{r: r, w: w, cancel: cancel, stopped: make(chan struct{}),
		http: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		defer close(s.stopped)
		watcher.RunReaper(rctx, c, w, st, id, log)
	}()
	go func() {
		if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("router HTTP server", "error", err)
		}
	}()
	return s, nil
}

func (s *routerServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	s.cancel()
	<-s.stopped
	s.r.Close()
	s.w.Close()
	return err
}
