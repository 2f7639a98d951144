package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// Monitor probes the cluster's nodes while it leads, and quarantines the sick ones. It runs
// on a goroutine of its own from Start until Close.
type Monitor struct {
	cfg   Config
	log   *slog.Logger
	coord Coordinator
	http  *http.Client
	admin *http.Server // serving Handler on Deps.Admin, if given

	registry    *prometheus.Registry
	probes      *prometheus.CounterVec
	quarantines prometheus.Counter
	held        prometheus.Counter
	suspect     prometheus.Counter
	leading     prometheus.Gauge

	mu    sync.Mutex
	state State
	live  []coord.Member // the live set, as the member watch last delivered it

	cancel context.CancelFunc
	wg     sync.WaitGroup // the loop, the member watch's follower and the admin server
	done   chan struct{}
	once   sync.Once
}

// State is what the monitor reports at /v1/state.
type State struct {
	ID      string           `json:"id"`
	Leading bool             `json:"leading"`
	Rounds  int64            `json:"rounds"`
	Nodes   map[string]Probe `json:"nodes"` // the last probe of each node
	Last    string           `json:"last_decision,omitempty"`
	// LastAt is when Last was decided: a decision stands until the next one, which may be
	// long after the rounds stopped agreeing with it.
	LastAt time.Time `json:"last_decision_at,omitzero"`
}

// Coordinator is what the monitor needs of the coordinator: the election it leads, the
// quarantine marks it reads and writes, and the member watch it follows the live set by.
// coord.Coordinator provides it. Its methods may be called concurrently.
type Coordinator interface {
	coord.Campaigner
	Quarantines(ctx context.Context) ([]coord.Quarantine, error)
	SetQuarantine(ctx context.Context, q coord.Quarantine, fence coord.Leadership) error
	// WatchMembers delivers the whole live set first and again after every change; the
	// channel is closed when ctx ends or the coordinator closes.
	WatchMembers(ctx context.Context) (<-chan []coord.Member, error)
}

var _ Coordinator = coord.Coordinator(nil)

// Deps are what a monitor is given. Close closes Admin, not Coord; if Start fails, Admin is
// still the caller's to close.
type Deps struct {
	Coord Coordinator
	// Admin, if set, is where the monitor serves Handler (/healthz, /metrics, /v1/state)
	// until Close; Config.AdminAddr defaults to its address.
	Admin  net.Listener
	Logger *slog.Logger
}

// adminHeaderTimeout bounds reading a request's headers on the admin listener.
const adminHeaderTimeout = 5 * time.Second

// Start starts a monitor: it follows the live set (returning once the first set has
// arrived, or when ctx ends first), campaigns in the "monitor" election and, while it
// leads, probes every interval, until Close. An invalid cfg starts nothing. ctx bounds the
// start only.
func Start(ctx context.Context, cfg Config, deps Deps) (*Monitor, error) {
	if deps.Admin != nil && cfg.AdminAddr == "" {
		cfg.AdminAddr = deps.Admin.Addr().String()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	m := &Monitor{
		cfg: cfg, log: log.With("component", "monitor", "monitor", cfg.ID), coord: deps.Coord,
		http:     &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		registry: prometheus.NewRegistry(),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_monitor_probes_total", Help: "Probe rounds of one node, by result (ok, failed).",
		}, []string{"node", "result"}),
		quarantines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_monitor_quarantines_total", Help: "Nodes this monitor quarantined.",
		}),
		held: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_monitor_quarantines_held_total", Help: "Rounds in which a quarantine was held back by the limits.",
		}),
		suspect: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_monitor_self_suspect_rounds_total", Help: "Rounds in which most nodes failed at once and the monitor acted on none.",
		}),
		leading: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_monitor_leading", Help: "1 while this monitor leads.",
		}),
		state: State{ID: cfg.ID, Nodes: map[string]Probe{}},
		done:  make(chan struct{}),
	}
	m.registry.MustRegister(m.probes, m.quarantines, m.held, m.suspect, m.leading, newProbeCollector(m),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if len(cfg.ZooKeeper) > 0 {
		m.registry.MustRegister(newZKCollector(cfg.ZooKeeper, cfg.ProbeTimeout)) // zkmetrics.go
	}
	rctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	if err := m.followMembers(ctx, rctx); err != nil {
		cancel()
		return nil, err
	}
	m.wg.Go(func() { m.run(rctx) })
	if deps.Admin != nil {
		m.admin = &http.Server{Handler: m.Handler(), ReadHeaderTimeout: adminHeaderTimeout}
		m.wg.Go(func() { _ = m.admin.Serve(deps.Admin) })
	}
	return m, nil
}

// followMembers keeps m.live as the member watch delivers it, until rctx ends. It returns
// once the first set has arrived, or with an error when ctx ends first.
func (m *Monitor) followMembers(ctx, rctx context.Context) error {
	ch, err := m.coord.WatchMembers(rctx)
	if err != nil {
		return fmt.Errorf("watch members: %w", err)
	}
	select {
	case set, ok := <-ch:
		if !ok {
			return fmt.Errorf("watch members: closed before the first set: %w", coord.ErrClosed)
		}
		m.setLive(set)
	case <-ctx.Done():
		return fmt.Errorf("watch members: %w", ctx.Err())
	}
	m.wg.Go(func() {
		for set := range ch {
			m.setLive(set)
		}
	})
	return nil
}

// setLive installs a delivered set, copied and in id order (the coordinator keeps its own).
func (m *Monitor) setLive(set []coord.Member) {
	live := slices.Clone(set)
	slices.SortFunc(live, func(a, b coord.Member) int { return strings.Compare(a.ID, b.ID) })
	m.mu.Lock()
	m.live = live
	m.mu.Unlock()
}

func (m *Monitor) members() []coord.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live
}

// Done is closed once the monitor has stopped.
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Close stops the monitor (resigning if it leads) and its admin server, and waits until it
// has; it then calls the coordinator no more. Idempotent.
func (m *Monitor) Close() {
	m.once.Do(func() {
		if m.admin != nil {
			_ = m.admin.Close()
		}
		m.cancel()
		m.wg.Wait()
		close(m.done)
	})
	<-m.done
}

// run campaigns for leadership and, while leading, probes every interval. It returns when
// ctx ends.
func (m *Monitor) run(ctx context.Context) {
	candidate := coord.Candidate{ID: m.cfg.ID, AdminAddr: m.cfg.AdminAddr}.String()
	coord.Lead(ctx, m.coord, "monitor", candidate, m.log, func(ctx context.Context, lead coord.Leadership) {
		m.log.Info("leading: probing the cluster")
		m.setLeading(true)
		m.lead(ctx, lead)
		m.setLeading(false)
	})
}

func (m *Monitor) setLeading(on bool) {
	m.mu.Lock()
	m.state.Leading = on
	m.mu.Unlock()
	if on {
		m.leading.Set(1)
	} else {
		m.leading.Set(0)
	}
}

// lead runs probe rounds until leadership or ctx ends.
func (m *Monitor) lead(ctx context.Context, lead coord.Leadership) {
	hist := map[string]*history{}
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		if err := m.round(ctx, lead, hist); errors.Is(err, coord.ErrNotLeader) {
			m.log.Warn("leadership lost while acting")
			return
		}
		select {
		case <-t.C:
		case <-lead.Done():
			m.log.Warn("leadership lost")
			return
		case <-ctx.Done():
			return
		}
	}
}

// round probes every live, unmarked node at once, judges and acts.
func (m *Monitor) round(ctx context.Context, lead coord.Leadership, hist map[string]*history) error {
	qctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
	marks, err := m.coord.Quarantines(qctx)
	cancel()
	if err != nil {
		m.log.Warn("cannot read quarantine marks; skipping the round", "error", err)
		return nil
	}
	marked := map[string]bool{}
	for _, q := range marks {
		marked[q.Node] = true
	}
	var targets []coord.Member
	for _, mem := range m.members() {
		if !marked[mem.ID] {
			targets = append(targets, mem)
		}
	}
	// Forget nodes that left.
	live := map[string]bool{}
	for _, mem := range targets {
		live[mem.ID] = true
		if hist[mem.ID] == nil {
			hist[mem.ID] = &history{}
		}
	}
	for id := range hist {
		if !live[id] {
			delete(hist, id)
		}
	}

	probes := make(map[string]Probe, len(targets))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, mem := range targets {
		prev := hist[mem.ID].last
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
			defer cancel()
			p := m.probe(pctx, mem, prev)
			mu.Lock()
			probes[mem.ID] = p
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for id, p := range probes {
		result := "ok"
		if p.Failed() {
			result = "failed"
		}
		m.probes.WithLabelValues(id, result).Inc()
	}

	v := judge(m.cfg, hist, probes, len(marks))
	for _, id := range v.Gone {
		m.log.Warn("node gone: its entry's process is not running (every connection refused, or another instance answers); not quarantined, it leaves the live set when its session ends", "node", id)
	}
	m.mu.Lock()
	m.state.Rounds++
	m.state.Nodes = probes
	m.mu.Unlock()
	switch {
	case v.SelfSuspect:
		m.suspect.Inc()
		m.decided("most nodes failed at once: suspecting myself, acting on none")
		m.log.Warn("most nodes failed their probes at once: suspecting myself, quarantining none", "nodes", len(probes))
	case v.Held != "":
		m.held.Inc()
		m.decided("held: " + v.Held)
		m.log.Warn("quarantine held back by the limits", "detail", v.Held)
	case v.Quarantine != "":
		evidence, _ := json.Marshal(struct {
			Rule   string  `json:"rule"`
			Probes []Probe `json:"probes"`
		}{v.Reason, hist[v.Quarantine].recent})
		q := coord.Quarantine{Node: v.Quarantine, Reason: v.Reason, At: time.Now().UTC(), By: m.cfg.ID, Evidence: evidence}
		qctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
		err := m.coord.SetQuarantine(qctx, q, lead)
		cancel()
		if err != nil {
			m.log.Error("quarantine failed", "node", v.Quarantine, "error", err)
			return err
		}
		m.quarantines.Inc()
		delete(hist, v.Quarantine)
		m.decided("quarantined " + v.Quarantine + ": " + v.Reason)
		m.log.Warn("quarantined a node", "node", v.Quarantine, "reason", v.Reason)
	}
	return nil
}

func (m *Monitor) decided(s string) {
	m.mu.Lock()
	m.state.Last, m.state.LastAt = s, time.Now().UTC()
	m.mu.Unlock()
}

// State returns a copy of the monitor's current state.
func (m *Monitor) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.state
	s.Nodes = make(map[string]Probe, len(m.state.Nodes))
	for k, v := range m.state.Nodes {
		s.Nodes[k] = v
	}
	return s
}

// Handler serves /healthz, /metrics and /v1/state.
func (m *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "leading": m.State().Leading})
	})
	mux.HandleFunc("GET /v1/state", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(m.State())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	return mux
}
