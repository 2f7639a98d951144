package monitor

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

func okProbe(e2e float64) Probe {
	return Probe{At: time.Now(), MQTT: Check{OK: true, Millis: 1}, E2E: Check{OK: true, Millis: e2e}, Health: Check{OK: true}, FailureRatio: -1}
}

func failedProbe() Probe {
	return Probe{At: time.Now(), MQTT: Check{Error: "connection refused"}, E2E: Check{Error: "not attempted"}, Health: Check{OK: true}, FailureRatio: -1}
}

// rounds feeds the same per-node probes to judge n times and returns the last verdict.
func rounds(cfg Config, hist map[string]*history, n int, marks int, probes map[string]Probe) verdict {
	var v verdict
	for range n {
		for id := range probes {
			if hist[id] == nil {
				hist[id] = &history{}
			}
		}
		v = judge(cfg, hist, probes, marks)
	}
	return v
}

func TestFailedNodeQuarantinedAfterFailAfterRounds(t *testing.T) {
	cfg := DefaultConfig()
	hist := map[string]*history{}
	probes := map[string]Probe{"a": okProbe(1), "b": okProbe(1), "c": failedProbe()}
	if v := rounds(cfg, hist, cfg.FailAfter-1, 0, probes); v.Quarantine != "" {
		t.Fatalf("quarantined after %d rounds: %+v", cfg.FailAfter-1, v)
	}
	v := rounds(cfg, hist, 1, 0, probes)
	if v.Quarantine != "c" || !strings.Contains(v.Reason, "3 consecutive failed probe rounds") ||
		!strings.Contains(v.Reason, "connection refused") {
		t.Fatalf("verdict %+v, want c quarantined naming the failure", v)
	}
	if len(hist["c"].recent) != cfg.FailAfter {
		t.Fatalf("evidence holds %d probes, want %d", len(hist["c"].recent), cfg.FailAfter)
	}
}

func TestRecoveryResetsTheStreak(t *testing.T) {
	cfg := DefaultConfig()
	hist := map[string]*history{}
	bad := map[string]Probe{"a": okProbe(1), "b": okProbe(1), "c": failedProbe()}
	good := map[string]Probe{"a": okProbe(1), "b": okProbe(1), "c": okProbe(1)}
	for range 5 {
		rounds(cfg, hist, cfg.FailAfter-1, 0, bad)
		if v := rounds(cfg, hist, 1, 0, good); v.Quarantine != "" {
			t.Fatalf("a node that recovers between failures was quarantined: %+v", v)
		}
	}
}

func TestSlowNodeNeedsToBeSlowerThanPeersAndTheFloor(t *testing.T) {
	cfg := DefaultConfig() // floor 250ms, 5x peers, 5 rounds
	hist := map[string]*history{}
	// Everyone slow: nobody stands out.
	if v := rounds(cfg, hist, 10, 0, map[string]Probe{"a": okProbe(400), "b": okProbe(420), "c": okProbe(410)}); v.Quarantine != "" {
		t.Fatalf("uniformly slow cluster: %+v", v)
	}
	// One node 10x its peers but under the floor: not slow.
	hist = map[string]*history{}
	if v := rounds(cfg, hist, 10, 0, map[string]Probe{"a": okProbe(2), "b": okProbe(2), "c": okProbe(20)}); v.Quarantine != "" {
		t.Fatalf("fast-enough node quarantined: %+v", v)
	}
	// Above the floor and far above its peers for SlowAfter rounds: quarantined.
	hist = map[string]*history{}
	v := rounds(cfg, hist, cfg.SlowAfter, 0, map[string]Probe{"a": okProbe(2), "b": okProbe(3), "c": okProbe(300)})
	if v.Quarantine != "c" || !strings.Contains(v.Reason, "latency") {
		t.Fatalf("verdict %+v, want c quarantined for latency", v)
	}
}

func TestErroringNode(t *testing.T) {
	cfg := DefaultConfig()
	hist := map[string]*history{}
	p := func(ratio float64) Probe { q := okProbe(1); q.FailureRatio = ratio; return q }
	v := rounds(cfg, hist, cfg.SlowAfter, 0, map[string]Probe{"a": p(0), "b": p(0.01), "c": p(0.8)})
	if v.Quarantine != "c" || !strings.Contains(v.Reason, "failure ratio") {
		t.Fatalf("verdict %+v, want c quarantined for its failure ratio", v)
	}
}

func TestMostNodesFailingMeansSuspectSelf(t *testing.T) {
	cfg := DefaultConfig()
	hist := map[string]*history{}
	probes := map[string]Probe{"a": failedProbe(), "b": failedProbe(), "c": okProbe(1)}
	v := rounds(cfg, hist, 10, 0, probes)
	if !v.SelfSuspect || v.Quarantine != "" {
		t.Fatalf("verdict %+v, want self-suspicion and no quarantine", v)
	}
	for id, h := range hist {
		if h.fails != 0 {
			t.Fatalf("%s accumulated %d failures during rounds the monitor doubted itself", id, h.fails)
		}
	}
}

func TestLimitsHoldQuarantines(t *testing.T) {
	cfg := DefaultConfig() // at most 1 quarantined, at least 2 healthy left
	// One mark already stands: a second sick node is held.
	hist := map[string]*history{}
	v := rounds(cfg, hist, cfg.FailAfter, 1, map[string]Probe{"a": okProbe(1), "b": okProbe(1), "c": failedProbe()})
	if v.Quarantine != "" || !strings.Contains(v.Held, "already quarantined") {
		t.Fatalf("verdict %+v, want held by the maximum", v)
	}
	// Two nodes, one sick: quarantining it would leave one healthy node (min 2).
	hist = map[string]*history{}
	v = rounds(cfg, hist, 10, 0, map[string]Probe{"a": okProbe(1), "c": failedProbe()})
	if !v.SelfSuspect && (v.Quarantine != "" || !strings.Contains(v.Held, "healthy")) {
		t.Fatalf("verdict %+v, want held by the healthy minimum", v)
	}
	// Four nodes, two sick (not a majority): exactly one is chosen.
	hist = map[string]*history{}
	v = rounds(cfg, hist, cfg.FailAfter, 0, map[string]Probe{"a": okProbe(1), "b": okProbe(1), "c": failedProbe(), "d": failedProbe()})
	if v.Quarantine != "c" && v.Quarantine != "d" {
		t.Fatalf("verdict %+v, want one of c and d", v)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.ID = "" }, "id"},
		{func(c *Config) { c.Interval = 0 }, "interval"},
		{func(c *Config) { c.FailAfter = 0 }, "fail-after"},
		{func(c *Config) { c.SlowFactor = 0.5 }, "slow factor"},
		{func(c *Config) { c.ErrorRatio = 2 }, "error ratio"},
		{func(c *Config) { c.MinHealthy = -1 }, "min healthy"},
	} {
		cfg := DefaultConfig()
		c.mut(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate = %v, want an error about %s", err, c.want)
		}
	}
}

// goneProbe is a node whose process is not running: every port refuses the connection.
func goneProbe() Probe {
	p := failedProbe()
	p.Health, p.Gone = Check{Error: "connection refused"}, true
	return p
}

// TestGoneNodeIsNotQuarantined: a node whose process is not running (killed, crashed) is
// left to its session's end, however many rounds it stays gone: a mark would keep the
// restarted process out until someone released it. It does not count against the monitor
// itself either, and is said once when it goes.
func TestGoneNodeIsNotQuarantined(t *testing.T) {
	cfg := DefaultConfig()
	hist := map[string]*history{}
	probes := map[string]Probe{"a": okProbe(1), "b": okProbe(1), "c": goneProbe()}
	v := rounds(cfg, hist, 1, 0, probes)
	if len(v.Gone) != 1 || v.Gone[0] != "c" {
		t.Fatalf("first gone round: %+v, want c named gone", v)
	}
	v = rounds(cfg, hist, 3*cfg.FailAfter, 0, probes)
	if v.Quarantine != "" || v.SelfSuspect || len(v.Gone) != 0 {
		t.Fatalf("after %d rounds gone: %+v, want nothing done and c not named again", 3*cfg.FailAfter, v)
	}
	// Two of three gone is not the monitor being cut off.
	probes["b"] = goneProbe()
	if v := rounds(cfg, hist, 1, 0, probes); v.SelfSuspect {
		t.Fatalf("two nodes gone: %+v, want no self-suspicion", v)
	}
	// A node that refuses MQTT but answers its admin endpoint is running, and sick.
	probes = map[string]Probe{"a": okProbe(1), "b": okProbe(1), "c": failedProbe()}
	if v := rounds(cfg, hist, cfg.FailAfter, 0, probes); v.Quarantine != "c" {
		t.Fatalf("a running node refusing MQTT: %+v, want it quarantined", v)
	}
}

// TestProbeTellsAGoneNodeFromASickOne: a node whose MQTT port and admin endpoint both refuse
// the connection is Gone; one whose admin endpoint answers while MQTT refuses is not.
func TestProbeTellsAGoneNodeFromASickOne(t *testing.T) {
	m := &Monitor{cfg: DefaultConfig(), http: &http.Client{}}
	ctx := testenv.Context(t, 10*time.Second)
	if p := m.probe(ctx, coord.Member{ID: "n1", MQTTAddr: testenv.RefusedAddr(t), AdminAddr: testenv.RefusedAddr(t)}, nil); !p.Gone || !p.Failed() {
		t.Fatalf("every port refused: %+v, want failed and gone", p)
	}
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"ready":false}`))
	}))
	defer admin.Close()
	if p := m.probe(ctx, coord.Member{ID: "n1", MQTTAddr: testenv.RefusedAddr(t), AdminAddr: admin.Listener.Addr().String()}, nil); p.Gone || !p.Failed() {
		t.Fatalf("MQTT refused, admin answering: %+v, want failed and not gone", p)
	}
}

// TestSilentMQTTLeavesTheReadinessCheckItsTime: a node whose MQTT port accepts and then
// says nothing uses up the probe's time; its /healthz, which answers within it, is still
// asked and recorded as passed. The checks ran one after the other, and the evidence of a
// quarantine said readiness had failed when it was never asked.
func TestSilentMQTTLeavesTheReadinessCheckItsTime(t *testing.T) {
	m := &Monitor{cfg: DefaultConfig(), http: &http.Client{}}
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accepted, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	// Its /healthz takes 100ms, well within the probe's time: asked after the MQTT probe
	// ran out, it could not answer in time.
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(100 * time.Millisecond) // a node answering slowly, not a wait for an event
		_, _ = w.Write([]byte(`{"ready":true,"node":"n1","state":"registered"}`))
	}))
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond) // the round's probe timeout
	defer cancel()
	p := m.probe(ctx, coord.Member{ID: "n1", MQTTAddr: silent.Addr().String(), AdminAddr: admin.Listener.Addr().String()}, nil)
	if p.MQTT.OK {
		t.Fatalf("a silent MQTT port passed: %+v", p)
	}
	if !p.Health.OK {
		t.Fatalf("readiness %+v after the MQTT probe used up the time, want passed (it answers in 100ms)", p.Health)
	}
}

// TestProbeTellsARestartedProcessFromTheEntrysOwn: a node killed and started again at once
// waits to register while its predecessor's entry lives on, refusing MQTT clients; its
// admin endpoint names another instance than the entry, so the entry's process is Gone. The
// same instance failing is judged as before.
func TestProbeTellsARestartedProcessFromTheEntrysOwn(t *testing.T) {
	m := &Monitor{cfg: DefaultConfig(), http: &http.Client{}}
	ctx := testenv.Context(t, 10*time.Second)
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"ready":false,"node":"n1","instance":"started-again","state":"registering","gate":"starting"}`))
	}))
	defer admin.Close()
	entry := coord.Member{ID: "n1", Instance: "killed", MQTTAddr: testenv.RefusedAddr(t), AdminAddr: admin.Listener.Addr().String()}
	if p := m.probe(ctx, entry, nil); !p.Gone || !p.Failed() {
		t.Fatalf("another instance answering for the entry: %+v, want failed and gone", p)
	}
	entry.Instance = "started-again"
	if p := m.probe(ctx, entry, nil); p.Gone || !p.Failed() {
		t.Fatalf("the entry's own instance failing: %+v, want failed and not gone", p)
	}
	// Another node's report at the entry's admin address says nothing of the entry.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"ready":true,"node":"n2","instance":"someone-else","state":"registered"}`))
	}))
	defer other.Close()
	entry.AdminAddr = other.Listener.Addr().String()
	if p := m.probe(ctx, entry, nil); p.Gone || p.Health.OK || !strings.Contains(p.Health.Error, "answers for node n2") {
		t.Fatalf("another node answering at the entry's admin address: %+v, want its readiness failed, not gone", p)
	}
}

// TestGoneNodesLeaveTheSelfSuspicionCount: gone nodes count neither as failed nor as
// probed when the monitor asks whether it is the one cut off: with 2 healthy, 3 failing and
// 2 gone, most of the running nodes failed, so it suspects itself and quarantines none.
func TestGoneNodesLeaveTheSelfSuspicionCount(t *testing.T) {
	cfg := DefaultConfig()
	hist := map[string]*history{}
	probes := map[string]Probe{"a": okProbe(1), "b": okProbe(1), "c": failedProbe(), "d": failedProbe(),
		"e": failedProbe(), "f": goneProbe(), "g": goneProbe()}
	for range cfg.FailAfter + 1 {
		if v := rounds(cfg, hist, 1, 0, probes); !v.SelfSuspect || v.Quarantine != "" {
			t.Fatalf("3 of 5 running nodes failing: %+v, want self-suspicion", v)
		}
	}
}

// TestCrashLoopingNodeIsQuarantined: a node that fails between restarts (refusing every
// connection while it is down) still adds up its failed rounds: gone rounds neither count
// nor reset them.
func TestCrashLoopingNodeIsQuarantined(t *testing.T) {
	cfg := DefaultConfig()
	hist := map[string]*history{}
	for i := range 3 * cfg.FailAfter {
		p := failedProbe()
		if i%3 == 2 {
			p = goneProbe()
		}
		if v := rounds(cfg, hist, 1, 0, map[string]Probe{"a": okProbe(1), "b": okProbe(1), "c": p}); v.Quarantine == "c" {
			return
		}
	}
	t.Fatalf("a node failing two rounds in three, gone in the third, not quarantined in %d rounds", 3*cfg.FailAfter)
}

// TestDecisionCarriesItsTime: the state's last decision says when it was made, since it
// stands until the next one (a trial read "suspecting myself" 17 minutes after the rounds
// had stopped failing, with nothing to tell it was old).
func TestDecisionCarriesItsTime(t *testing.T) {
	m := &Monitor{}
	before := time.Now()
	m.decided("held: test")
	if st := m.State(); st.Last != "held: test" || st.LastAt.Before(before) || st.LastAt.After(time.Now()) {
		t.Fatalf("state %+v, want the decision with its time", st)
	}
}
