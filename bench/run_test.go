package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

func TestRunPubSub(t *testing.T) {
	_, addr := startMochi(t)
	for _, qos := range []byte{0, 1} {
		cfg := DefaultPubSubConfig()
		cfg.MQTT, cfg.Pairs, cfg.Count, cfg.Duration, cfg.QoS = addr, 3, 3000, 0, qos
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
	}
}

func TestRunPubSubRateAndDuration(t *testing.T) {
	_, addr := startMochi(t)
	cfg := DefaultPubSubConfig()
	cfg.MQTT, cfg.Pairs, cfg.Duration, cfg.Rate, cfg.QoS = addr, 2, time.Second, 500, 1
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
	batches atomic.Int64
}

type fakeMsg struct {
	To      string `json:"to"`
	Payload string `json:"payload"`
	QoS     byte   `json:"qos"`
}

func (f *fakeRouter) publish(m fakeMsg) int {
	st, _ := ParseStamp([]byte(m.Payload))
	if f.refuse != nil && f.refuse(st) {
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
		code := f.publish(m)
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"id":"x","status":"delivered"}`)
	case "/v1/messages/batch":
		f.batches.Add(1)
		var b struct{ Messages []fakeMsg }
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
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
	srv, addr := startMochi(t)
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

func TestRunDirectUnreachableNode(t *testing.T) {
	cfg := DefaultDirectConfig()
	cfg.MQTT = []string{"127.0.0.1:1"}
	if _, err := RunDirect(context.Background(), cfg); err == nil {
		t.Fatal("RunDirect succeeded without a broker")
	}
}

func TestRunConnect(t *testing.T) {
	_, addr := startMochi(t)
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
	_, addr := startMochi(t)
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
