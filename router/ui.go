package router

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"sync"
	"time"
)

// uiFiles is the dashboard's page: plain HTML, JavaScript and CSS, no build step.
//
//go:embed ui
var uiFiles embed.FS

// DashboardConfig configures the web dashboard. DefaultDashboardConfig shows every default.
type DashboardConfig struct {
	// Refresh is how often an open dashboard is sent a new overview.
	Refresh time.Duration
	// Cache is how long one overview serves every viewer before it is built again, so the
	// nodes' /healthz are fetched at most this often however many dashboards are open.
	Cache time.Duration
	// FetchTimeout bounds each read behind an overview: a node's /healthz, the monitor's
	// /v1/state, the coordinator's quarantine marks and election.
	FetchTimeout time.Duration
	// MailboxInterval is how often the mailbox depths are sampled.
	MailboxInterval time.Duration
	// MailboxSample is the most mailboxes one sample reads; a larger store is sampled.
	MailboxSample int
	// MailboxCalls is the most store calls one sample makes (each examines up to
	// store.MaxMailboxesPage entries: on Redis, keys of every kind).
	MailboxCalls int
	// Deepest is how many of the deepest mailboxes an overview lists.
	Deepest int
	// MaxStreams caps the live-update streams open at once; more are refused with 503
	// and the page retries.
	MaxStreams int
}

// DefaultDashboardConfig returns the defaults.
func DefaultDashboardConfig() DashboardConfig {
	return DashboardConfig{
		Refresh:         time.Second,
		Cache:           900 * time.Millisecond, // under Refresh: each push is fresh, viewers share it
		FetchTimeout:    time.Second,
		MailboxInterval: 10 * time.Second,
		MailboxSample:   10_000,
		MailboxCalls:    100, // up to 100,000 Redis keys examined per sample
		Deepest:         10,
		MaxStreams:      100,
	}
}

// Validate checks the configuration; errors name the field.
func (c DashboardConfig) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"refresh", c.Refresh}, {"cache", c.Cache}, {"fetch timeout", c.FetchTimeout}, {"mailbox interval", c.MailboxInterval}} {
		if d.v <= 0 {
			return fmt.Errorf("dashboard %s %v must be positive", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"mailbox sample", c.MailboxSample}, {"mailbox calls", c.MailboxCalls}, {"deepest", c.Deepest}, {"max streams", c.MaxStreams}} {
		if n.v <= 0 {
			return fmt.Errorf("dashboard %s %d must be positive", n.name, n.v)
		}
	}
	return nil
}

// Dashboard serves the web dashboard beside the router's API: the page at /ui (/ redirects
// there), and the cluster overview it shows at /v1/dashboard, once or as a stream of
// server-sent events. The page itself holds no data and is served without a token; the
// overview, like the rest of the API, needs one when tokens are on (the page asks for it and
// sends it as a bearer header; see docs/SECURITY.md). Safe for concurrent use.
type Dashboard struct {
	cfg     DashboardConfig
	r       *Router
	cluster Cluster
	log     *slog.Logger
	client  *http.Client

	streams chan struct{} // a slot per open stream
	done    chan struct{} // closed by Close: streams end
	once    sync.Once

	mu sync.Mutex // held while an overview is built, so viewers share one build
	ov overviewState
}

// NewDashboard returns the dashboard of router r, reading marks and elections from c.
// Close ends its streams; it does not close r or c.
func NewDashboard(cfg DashboardConfig, r *Router, c Cluster, log *slog.Logger) (*Dashboard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Dashboard{
		cfg: cfg, r: r, cluster: c, log: log.With("component", "dashboard"),
		// Keep-alive connections to the nodes' and monitor's admin ports: one fetch each per
		// overview. Close drops them.
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}},
		streams: make(chan struct{}, cfg.MaxStreams),
		done:    make(chan struct{}),
	}, nil
}

// Close ends the live streams (so that an HTTP server's Shutdown need not wait for them)
// and drops idle connections. Idempotent.
func (d *Dashboard) Close() {
	d.once.Do(func() { close(d.done) })
	d.client.CloseIdleConnections()
}

// Handler serves the router's API (Router.Handler) and the dashboard, without tokens.
func (d *Dashboard) Handler() http.Handler {
	return d.handler(d.r.Handler(), func(h http.Handler) http.Handler { return h })
}

// AuthHandler serves the router's API behind bearer tokens (Router.AuthHandler) and the
// dashboard: its page without a token (it holds no data), its overview with one.
func (d *Dashboard) AuthHandler(t *Tokens) http.Handler {
	return d.handler(d.r.AuthHandler(t), func(h http.Handler) http.Handler { return d.r.requireToken(t, h) })
}

func (d *Dashboard) handler(api http.Handler, guard func(http.Handler) http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range d.pageRoutes() {
		mux.Handle(rt.pattern, rt.handler)
	}
	for _, rt := range d.dataRoutes() {
		mux.Handle(rt.pattern, guard(rt.handler))
	}
	// A dashboard path asked with another method is a 405 (behind the token for the data);
	// anything else is the API's, which answers 405 or 404 for what it does not serve.
	pages, data := patternMux(d.pageRoutes()), patternMux(d.dataRoutes())
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if allow := allowedMethods(pages, req); allow != nil {
			methodNotAllowed(w, req, allow)
			return
		}
		if allow := allowedMethods(data, req); allow != nil {
			guard(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { methodNotAllowed(w, req, allow) })).ServeHTTP(w, req)
			return
		}
		api.ServeHTTP(w, req)
	}))
	return mux
}

// pageRoutes serve the page: no data, so no token.
func (d *Dashboard) pageRoutes() []route {
	return []route{
		{"GET /{$}", http.RedirectHandler("/ui", http.StatusFound)},
		{"GET /ui", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { serveUIFile(w, "index.html") })},
		{"GET /ui/{file}", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { serveUIFile(w, req.PathValue("file")) })},
	}
}

// dataRoutes serve what the page shows: behind the token, like the API.
func (d *Dashboard) dataRoutes() []route {
	return []route{
		{"GET /v1/dashboard", http.HandlerFunc(d.handleOverview)},
		{"GET /v1/dashboard/events", http.HandlerFunc(d.handleEvents)},
	}
}

// serveUIFile serves one embedded file, with headers that keep the page to itself: its
// scripts and styles only from here, its requests only to here, never framed. The page
// keeps the API token in sessionStorage, so what guards it is that no other script runs.
func serveUIFile(w http.ResponseWriter, name string) {
	b, err := fs.ReadFile(uiFiles, path.Join("ui", path.Clean("/"+name)))
	if err != nil {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: "no such dashboard file: " + name})
		return
	}
	h := w.Header()
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "+
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

func (d *Dashboard) handleOverview(w http.ResponseWriter, req *http.Request) {
	writeJSON(w, http.StatusOK, d.Overview(req.Context()))
}

// handleEvents streams an overview every Refresh as server-sent events ("event: overview",
// the JSON on one data line) until the client goes, the dashboard closes or a write fails.
// The page reads it with fetch, not EventSource, so that it can send the bearer header.
func (d *Dashboard) handleEvents(w http.ResponseWriter, req *http.Request) {
	select {
	case d.streams <- struct{}{}:
		defer func() { <-d.streams }()
	default:
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: fmt.Sprintf("%d dashboard streams are open, the most allowed; retry later", d.cfg.MaxStreams)})
		return
	}
	// The server's write deadline (counted from the request) would cut the stream off: a
	// deadline per event replaces it, so only a client that stops reading is dropped.
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold events back
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(d.cfg.Refresh)
	defer tick.Stop()
	for {
		b, err := json.Marshal(d.Overview(req.Context()))
		if err != nil {
			d.log.Error("encode overview", "error", err)
			return
		}
		_ = rc.SetWriteDeadline(time.Now().Add(d.cfg.Refresh + 10*time.Second))
		if _, err := fmt.Fprintf(w, "event: overview\ndata: %s\n\n", b); err != nil {
			return
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return
		}
		select {
		case <-tick.C:
		case <-req.Context().Done():
			return
		case <-d.done:
			return
		}
	}
}
