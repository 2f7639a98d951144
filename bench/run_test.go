package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

func TestRunPubSub(t *testing.T) {
	_, addr := testenv.StartMochi(t)
	for _, qos := range []byte{0, 1} {
		cfg := DefaultPubSubConfig()
		cfg.MQTT, cfg.Pairs, cfg.Count, cfg.Duration, cfg.QoS = []string{addr}, 3, 3000, 0, qos
		res, err := RunPubSub(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		c := res.Completeness
		if !res.OK || c.Received != 3000 || c.Accepted != 3000 || res.Sent != 3000 || c.Missing != 0 {
			t.Fatalf("qos %d: %+v %+v", qos, res, c)
		}
		if res.Latency.Count != 3000 || res.Latency.P99 <= 0 || res.DeliveredPerS <= 0 || res.GeneratorCPUPerMsgUS <= 0 {
			t.Fatalf("qos %d: figures %+v", qos, res)
		}
		if p := res.Placement; p == nil || p.Pairs != 3 || p.CrossBroker != 0 || len(p.Routes) != 1 || p.Routes[0].Sub != addr {
			t.Fatalf("qos %d: placement %+v", qos, p)
		}
	}
}

func TestRunPubSubRateAndDuration(t *testing.T) {
	_, addr := testenv.StartMochi(t)
	cfg := DefaultPubSubConfig()
	cfg.MQTT, cfg.Pairs, cfg.Duration, cfg.Rate, cfg.QoS = []string{addr}, 2, time.Second, 500, 1
	res, err := RunPubSub(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Sent < 400 || res.Sent > 510 {
		t.Fatalf("sent %d in a second at 500/s: %+v", res.Sent, res)
	}
}

// fakeRouter is the router's HTTP API over a mochi broker's inline client: every message
// is published to inbox/<to> and answered "delivered". lose drops a message (still
// answering 200); hold delays one so the next overtakes it.
type fakeRouter struct {
	srv     *mqtt.Server
	lose    func(Stamp) bool
	hold    func(Stamp) bool
	mu      sync.Mutex
	held    []fakeMsg
	refuse  func(Stamp) bool
	gate    sync.RWMutex
	away    func(to string) bool // under gate (read); refuses a message to a client away
	batches atomic.Int64
	// maxWaits counts the max_wait of each request ("" when it had none).
	maxWaits map[string]int
}

type fakeMsg struct {
	To      string `json:"to"`
	Payload string `json:"payload"`
	QoS     byte   `json:"qos"`
	MaxWait string `json:"max_wait"`
}

func (f *fakeRouter) sawMaxWait(v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.maxWaits == nil {
		f.maxWaits = map[string]int{}
	}
	f.maxWaits[v]++
}

func (f *fakeRouter) publish(m fakeMsg) int {
	// A test that changes refuse holds gate: no publish straddles the change.
	f.gate.RLock()
	defer f.gate.RUnlock()
	st, _ := ParseStamp([]byte(m.Payload))
	if f.refuse != nil && f.refuse(st) {
		return http.StatusServiceUnavailable
	}
	if f.away != nil && f.away(m.To) {
		return http.StatusServiceUnavailable
	}
	if f.lose != nil && f.lose(st) {
		return http.StatusOK
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hold != nil && f.hold(st) {
		f.held = append(f.held, m)
		return http.StatusOK
	}
	_ = f.srv.Publish("inbox/"+m.To, []byte(m.Payload), false, m.QoS)
	// A held message goes out after the next one to the same client.
	kept := f.held[:0]
	for _, h := range f.held {
		if h.To == m.To {
			_ = f.srv.Publish("inbox/"+h.To, []byte(h.Payload), false, h.QoS)
		} else {
			kept = append(kept, h)
		}
	}
	f.held = kept
	return http.StatusOK
}

func (f *fakeRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/metrics":
		fmt.Fprintln(w, "# HELP process_cpu_seconds_total x\nprocess_cpu_seconds_total 1.5")
	case "/v1/messages":
		var m fakeMsg
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.sawMaxWait(m.MaxWait)
		code := f.publish(m)
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"id":"x","status":"delivered"}`)
	case "/v1/messages/batch":
		f.batches.Add(1)
		var b struct {
			Messages []fakeMsg
			MaxWait  string `json:"max_wait"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.sawMaxWait(b.MaxWait)
		for _, m := range b.Messages {
			if m.MaxWait != "" {
				http.Error(w, "max_wait on a batch item", http.StatusBadRequest)
				return
			}
		}
		type item struct {
			Code   int    `json:"code"`
			Status string `json:"status,omitempty"`
			Error  string `json:"error,omitempty"`
		}
		var out struct {
			Results []item `json:"results"`
		}
		status := http.StatusOK
		for _, m := range b.Messages {
			if code := f.publish(m); code == http.StatusOK {
				out.Results = append(out.Results, item{Code: code, Status: "queued"})
			} else {
				out.Results = append(out.Results, item{Code: code, Error: "store unavailable"})
				status = http.StatusMultiStatus
			}
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(out)
	default:
		http.NotFound(w, r)
	}
}

func directSetup(t *testing.T, f *fakeRouter) DirectConfig {
	srv, addr := testenv.StartMochi(t)
	f.srv = srv
	api := httptest.NewServer(f)
	t.Cleanup(api.Close)
	cfg := DefaultDirectConfig()
	cfg.API, cfg.MQTT, cfg.Clients, cfg.Senders = api.URL, []string{addr}, 20, 4
	cfg.Count, cfg.Duration, cfg.DrainTimeout = 2000, 0, 3*time.Second
	return cfg
}

func TestRunDirectComplete(t *testing.T) {
	for _, batch := range []int{1, 25} {
		f := &fakeRouter{}
		cfg := directSetup(t, f)
		cfg.Batch = batch
		res, err := RunDirect(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		c := res.Completeness
		if !res.OK || c.Accepted != 2000 || c.Received != 2000 || res.Latency.Count != 2000 {
			t.Fatalf("batch %d: %+v %+v", batch, res, c)
		}
		if res.RouterCPUPerMsgUS == nil || *res.RouterCPUPerMsgUS != 0 {
			t.Fatalf("router CPU per message: %v", res.RouterCPUPerMsgUS)
		}
		want := "delivered"
		if batch > 1 {
			want = "queued"
			if f.batches.Load() != 2000/25 {
				t.Fatalf("%d batch requests, want %d", f.batches.Load(), 2000/25)
			}
		}
		if res.Outcomes[want] != 2000 {
			t.Fatalf("outcomes %v", res.Outcomes)
		}
	}
}

func TestRunDirectDetectsLoss(t *testing.T) {
	cfg := directSetup(t, &fakeRouter{lose: func(s Stamp) bool { return s.Stream == 3 && s.Seq == 17 }})
	res, err := RunDirect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Completeness.Missing != 1 || !strings.Contains(res.Completeness.Examples[0], "stream 3: message 17") {
		t.Fatalf("a lost message went unnoticed: %+v %+v", res, res.Completeness)
	}
}

func TestRunDirectDetectsReorder(t *testing.T) {
	cfg := directSetup(t, &fakeRouter{hold: func(s Stamp) bool { return s.Stream == 5 && s.Seq == 10 }})
	res, err := RunDirect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Completeness.OutOfOrder != 1 || res.Completeness.Missing != 0 {
		t.Fatalf("a reordered message went unnoticed: %+v %+v", res, res.Completeness)
	}
}

func TestRunDirectRefusedIsNotLost(t *testing.T) {
	f := &fakeRouter{refuse: func(s Stamp) bool { return s.Seq%10 == 3 }}
	cfg := directSetup(t, f)
	res, err := RunDirect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Completeness
	if !res.OK || c.Refused != 200 || c.Accepted != 1800 || len(res.Errors) == 0 {
		t.Fatalf("%+v %+v", res, c)
	}
}

func TestRunDirectRate(t *testing.T) {
	cfg := directSetup(t, &fakeRouter{})
	cfg.Count, cfg.Duration, cfg.Rate = 0, time.Second, 400
	res, err := RunDirect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Sent < 350 || res.Sent > 410 {
		t.Fatalf("sent %d in a second at 400/s: %+v", res.Sent, res)
	}
}

func TestRunDirectMaxWait(t *testing.T) {
	for _, batch := range []int{1, 10} {
		f := &fakeRouter{}
		cfg := directSetup(t, f)
		cfg.Batch, cfg.Count, cfg.MaxWait = batch, 200, 50*time.Millisecond
		res, err := RunDirect(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		want := 200 / batch
		if !res.OK || f.maxWaits["50ms"] != want || len(f.maxWaits) != 1 {
			t.Fatalf("batch %d: max_wait of the requests %v, want 50ms on all %d (ok %v)", batch, f.maxWaits, want, res.OK)
		}
		if res.Answer == nil || res.Answer.Count != uint64(want) || res.Answer.P99 <= 0 {
			t.Fatalf("batch %d: answer times %+v for %d requests", batch, res.Answer, want)
		}
	}
	f := &fakeRouter{}
	cfg := directSetup(t, f)
	cfg.Count = 100
	if _, err := RunDirect(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if f.maxWaits[""] != 100 {
		t.Fatalf("without --max-wait the requests had max_wait %v", f.maxWaits)
	}
}

func TestPlanLanes(t *testing.T) {
	for _, c := range []struct{ clients, senders, burst int }{
		{1, 1, 10}, {1, 4, 10}, {3, 8, 100}, {5, 2, 7}, {2, 5, 3}, {4, 4, 0}, {1, 16, 3},
	} {
		cfg := DirectConfig{Clients: c.clients, Senders: c.senders, Burst: c.burst}
		lanes := planLanes(cfg)
		perClient := make([]int, c.clients)
		lanesOf := make([]int, c.clients)
		senderHas := make([]bool, c.senders)
		for _, ln := range lanes {
			if c.burst == 0 && ln.quota != -1 || c.burst > 0 && ln.quota < 0 {
				t.Fatalf("%+v: lane %+v has quota %d", c, ln, ln.quota)
			}
			perClient[ln.client] += ln.quota
			lanesOf[ln.client]++
			senderHas[ln.sender] = true
		}
		if len(lanes) != max(c.clients, c.senders) {
			t.Fatalf("%+v: %d lanes", c, len(lanes))
		}
		for cl := range c.clients {
			if c.burst > 0 && perClient[cl] != c.burst {
				t.Errorf("%+v: client %d gets %d messages, want %d", c, cl, perClient[cl], c.burst)
			}
			if c.senders <= c.clients && lanesOf[cl] != 1 {
				t.Errorf("%+v: client %d has %d lanes, want 1", c, cl, lanesOf[cl])
			}
		}
		for s, ok := range senderHas {
			if !ok {
				t.Errorf("%+v: sender %d has no lane", c, s)
			}
		}
	}
}

func TestRunDirectBurst(t *testing.T) {
	for _, c := range []struct{ clients, senders, burst, batch int }{
		{1, 4, 3000, 50}, // one client, several senders: order per sender
		{3, 8, 1000, 20},
		{5, 2, 200, 7},
	} {
		f := &fakeRouter{}
		cfg := directSetup(t, f)
		cfg.Clients, cfg.Senders, cfg.Count, cfg.Burst, cfg.Batch = c.clients, c.senders, 0, c.burst, c.batch
		res, err := RunDirect(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		all := int64(c.clients * c.burst)
		cc, b := res.Completeness, res.Burst
		if !res.OK || cc.Accepted != all || cc.Received != all || res.Sent != all {
			t.Fatalf("%+v: %+v %+v", c, res, cc)
		}
		if b == nil || b.PerClient != c.burst || b.Clients != c.clients || b.ClientsComplete != c.clients {
			t.Fatalf("%+v: burst %+v", c, b)
		}
		if b.ClientPerS.Min <= 0 || b.ClientPerS.Min > b.ClientPerS.P50 || b.ClientPerS.P50 > b.ClientPerS.Max || b.ClientSeconds.Max <= 0 {
			t.Fatalf("%+v: per-client figures %+v", c, b)
		}
		if c.clients == 1 && f.batches.Load() != int64(c.burst/c.batch) {
			t.Fatalf("%+v: %d batch requests, want %d", c, f.batches.Load(), c.burst/c.batch)
		}
	}
}

func TestRunDirectBurstChecksOrderPerClient(t *testing.T) {
	// One sender: the held message is overtaken by the next of the same lane.
	cfg := directSetup(t, &fakeRouter{hold: func(s Stamp) bool { return s.Stream == 0 && s.Seq == 10 }})
	cfg.Clients, cfg.Senders, cfg.Count, cfg.Burst, cfg.Batch = 1, 1, 0, 500, 20
	res, err := RunDirect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Completeness.OutOfOrder != 1 || res.Burst.ClientsComplete != 0 {
		t.Fatalf("a reordered message went unnoticed: %+v %+v", res.Completeness, res.Burst)
	}
}

func TestRunDirectBurstDetectsLoss(t *testing.T) {
	// 2 clients, 4 senders: lanes 0-3, lane 3 is client 1's second.
	cfg := directSetup(t, &fakeRouter{lose: func(s Stamp) bool { return s.Stream == 3 && s.Seq == 5 }})
	cfg.Clients, cfg.Senders, cfg.Count, cfg.Burst, cfg.Batch = 2, 4, 0, 400, 10
	res, err := RunDirect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Completeness.Missing != 1 || res.Burst.ClientsComplete != 1 {
		t.Fatalf("a lost message went unnoticed: %+v %+v", res.Completeness, res.Burst)
	}
}

func TestRunDirectDelayClients(t *testing.T) {
	const delay = 40 * time.Millisecond
	cfg := directSetup(t, &fakeRouter{})
	cfg.Clients, cfg.Senders, cfg.Count, cfg.Batch = 5, 1, 500, 5
	cfg.DelayClients, cfg.Delay = 1, delay
	res, err := RunDirect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Completeness
	if !res.OK || c.Received != 500 || c.Duplicates != 0 {
		t.Fatalf("%+v %+v", res, c)
	}
	// A fifth of the messages go to the client behind the proxy: they take the delay at
	// least (the fake router answers without waiting for PUBACKs).
	if res.Latency.Max < float64(delay)/float64(time.Millisecond) || res.Latency.P90 < float64(delay)/float64(time.Millisecond) {
		t.Fatalf("latency %+v: the delayed client's messages came sooner than %v", res.Latency, delay)
	}
}

func TestDirectConfigValidate(t *testing.T) {
	for _, c := range []struct {
		change func(*DirectConfig)
		want   string
	}{
		{func(c *DirectConfig) { c.Burst = -1 }, "Burst"},
		{func(c *DirectConfig) { c.Burst, c.Count = 10, 10 }, "not both"},
		{func(c *DirectConfig) { c.Burst, c.Rate = 10, 100 }, "Rate"},
		{func(c *DirectConfig) { c.Burst, c.Clients = 10_000_000, 100 }, "in all"},
		{func(c *DirectConfig) { c.MaxWait = time.Microsecond }, "MaxWait"},
		{func(c *DirectConfig) { c.MaxWait = -time.Second }, "MaxWait"},
		{func(c *DirectConfig) { c.DelayClients = 101 }, "DelayClients"},
		{func(c *DirectConfig) { c.DelayClients, c.Delay = 1, 0 }, "Delay"},
		{func(c *DirectConfig) { c.DelayClients, c.Delay = 1, time.Minute }, "Delay"},
		{func(c *DirectConfig) { c.Duration = 0 }, "Duration"},
	} {
		cfg := DefaultDirectConfig()
		c.change(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %s", cfg, err, c.want)
		}
	}
	cfg := DefaultDirectConfig()
	cfg.Duration, cfg.Burst, cfg.MaxWait, cfg.DelayClients = 0, 10, time.Millisecond, 100
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestRunDirectUnreachableNode(t *testing.T) {
	cfg := DefaultDirectConfig()
	cfg.MQTT = []string{"127.0.0.1:1"}
	if _, err := RunDirect(context.Background(), cfg); err == nil {
		t.Fatal("RunDirect succeeded without a broker")
	}
}

func TestRunConnect(t *testing.T) {
	_, addr := testenv.StartMochi(t)
	var heap atomic.Int64
	heap.Store(1 << 20)
	var gcs atomic.Int64
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/debug/pprof/heap":
			gcs.Add(1)
		case "/metrics":
			// Each reading shows 100 KB more heap than the last: the first is "before".
			h := heap.Add(100_000)
			fmt.Fprintf(w, "go_memstats_heap_inuse_bytes %d\ngo_memstats_stack_inuse_bytes 0\nprocess_resident_memory_bytes %d\n", h, 2*h)
		}
	}))
	defer admin.Close()
	cfg := DefaultConnectConfig()
	cfg.MQTT, cfg.Connections, cfg.Settle = []string{addr}, 100, 10*time.Millisecond
	cfg.Admin = []string{admin.URL}
	cfg.SourceIPs = []string{"127.0.0.2", "127.0.0.3"}
	res, err := RunConnect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Connect
	if !res.OK || s.Established != 100 || s.Failed != 0 || s.PerSecond <= 0 || s.Latency.Count != 100 {
		t.Fatalf("%+v %+v", res, s)
	}
	if s.GoBytesPerConn != 1000 || s.BytesPerConn != 2000 || gcs.Load() != 2 {
		t.Fatalf("per connection: go %v rss %v (gcs %d), want 1000 and 2000", s.GoBytesPerConn, s.BytesPerConn, gcs.Load())
	}
}

func TestRunConnectReportsFailures(t *testing.T) {
	_, addr := testenv.StartMochi(t)
	cfg := DefaultConnectConfig()
	cfg.MQTT, cfg.Connections, cfg.Prefix = []string{addr}, 10, "refused-x"
	res, err := RunConnect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Connect.Failed != 10 || len(res.Errors) == 0 {
		t.Fatalf("%+v", res)
	}
}

// TestRunConnectHold: held clients are pinged every interval within the hold (three rounds
// of 0.5 s in 1.5 s) and every ping is answered; the broker's CPU over the hold is read
// from its process.
func TestRunConnectHold(t *testing.T) {
	_, addr := testenv.StartMochi(t)
	cfg := DefaultConnectConfig()
	cfg.MQTT, cfg.Connections, cfg.KeepAlive = []string{addr}, 20, 2
	cfg.Hold, cfg.PingInterval = 1500*time.Millisecond, 500*time.Millisecond
	cfg.PIDs = []int{os.Getpid()} // the mochi broker runs in this process
	res, err := RunConnect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Connect
	if !res.OK || s.Pings != 60 || s.PingsFailed == nil || *s.PingsFailed != 0 || s.PingLatency == nil || s.PingLatency.Count != 60 {
		t.Fatalf("pings %d, failed %d, latency %+v (%+v)", s.Pings, s.PingsFailed, s.PingLatency, res.Errors)
	}
	if s.HoldCPUCores == nil || *s.HoldCPUCores < 0 {
		t.Fatalf("hold CPU %v", s.HoldCPUCores)
	}
	cfg.PingInterval = 3 * time.Second // the broker closes a client silent for 1.5 × 2 s
	if err := cfg.Validate(); err == nil {
		t.Fatal("a ping interval beyond the keep-alive accepted")
	}
}
