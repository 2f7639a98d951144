package router_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
)

func newDashboard(t *testing.T, f fixture, tune func(*router.DashboardConfig)) *router.Dashboard {
	t.Helper()
	cfg := router.DefaultDashboardConfig()
	if tune != nil {
		tune(&cfg)
	}
	d, err := router.NewDashboard(cfg, f.r, f.cl.c, testenv.Logger(t))
	if err != nil {
		t.Fatalf("NewDashboard: %v", err)
	}
	t.Cleanup(d.Close)
	return d
}

// fakeAdmin serves a node's /healthz whose counters grow by 10 at every read.
func fakeAdmin(t *testing.T, id string, status int) *httptest.Server {
	t.Helper()
	var reads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/healthz" {
			http.NotFound(w, req)
			return
		}
		n := 10 * reads.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"ready":%v,"node":%q,"state":"registered","epoch":7,"clients":3,"checks":{"store":{"ok":true,"ms":0.4},"disk":{"ok":%v,"detail":"12 MiB free"}},`+
			`"counters":{"messages_in":%d,"messages_out":%d,"deliveries_ok":%d,"delivery_failures":0},"checked_at":%q}`,
			status == 200, id, status == 200, n, 2*n, n, time.Now().UTC().Format(time.RFC3339Nano))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// register puts a node with admin address admin in the live set and waits for the watcher.
func register(t *testing.T, f fixture, id, admin string) coord.Registration {
	t.Helper()
	m := coordtest.NewMember(id)
	m.AdminAddr = admin
	reg, err := f.cl.c.Register(testenv.Context(t, 10*time.Second), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Deregister(context.Background()) })
	st, _ := reg.Status()
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, live := f.cl.w.Live(id, st.Epoch); !live {
			return fmt.Errorf("%s not in the watcher's set", id)
		}
		return nil
	})
	return reg
}

// schema returns a component schema of the OpenAPI document.
func schema(t *testing.T, name string) *openapi3.Schema {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(router.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := doc.Components.Schemas[name]
	if !ok {
		t.Fatalf("the OpenAPI document has no schema %s", name)
	}
	return s.Value
}

// conforms checks a JSON answer against the document's schema name.
func conforms(t *testing.T, name string, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	if err := schema(t, name).VisitJSON(v); err != nil {
		t.Fatalf("the answer does not match the OpenAPI schema %s: %v\n%s", name, err, body)
	}
}

// TestDashboardOverview: the overview shows the live nodes with their /healthz and rates,
// a quarantine with who decided and its evidence (and the node after it left the live
// set), the leading monitor's state from its published admin address, and the mailbox
// depths; it matches its OpenAPI schema.
func TestDashboardOverview(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	d := newDashboard(t, f, func(c *router.DashboardConfig) {
		c.Cache = time.Millisecond
		c.MailboxInterval = time.Millisecond
		c.Deepest = 2
	})
	h := d.Handler()
	a := fakeAdmin(t, "node-a", 200)
	b := fakeAdmin(t, "node-b", 503)
	register(t, f, "node-a", a.Listener.Addr().String())
	regB := register(t, f, "node-b", b.Listener.Addr().String())
	mon := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"mon-t","leading":true,"rounds":7,"nodes":{"node-a":{"mqtt_ping":{"ok":true,"ms":1.5}}},"last_decision":"held: test"}`)
	}))
	t.Cleanup(mon.Close)
	ctx := testenv.Context(t, 20*time.Second)
	lead, err := f.cl.c.Campaign(ctx, "monitor", coord.Candidate{ID: "mon-t", AdminAddr: mon.Listener.Addr().String()}.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lead.Resign(context.Background()) })
	for client, n := range map[string]int{"deep": 5, "mid": 3, "shallow": 1} {
		var msgs []store.Message
		for i := range n {
			msgs = append(msgs, store.Message{ID: fmt.Sprint(i), To: client, Topic: "inbox/" + client, TTL: time.Hour})
		}
		if _, err := f.st.Append(ctx, 100, msgs); err != nil {
			t.Fatal(err)
		}
	}

	get := func() (router.Overview, []byte) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/dashboard", nil))
		if rec.Code != 200 {
			t.Fatalf("GET /v1/dashboard: %d %s", rec.Code, rec.Body)
		}
		var ov router.Overview
		if err := json.Unmarshal(rec.Body.Bytes(), &ov); err != nil {
			t.Fatal(err)
		}
		return ov, rec.Body.Bytes()
	}
	get() // the first overview has no rates yet
	time.Sleep(10 * time.Millisecond)
	ov, body := get()
	conforms(t, "Overview", body)
	if len(ov.Nodes) != 2 || ov.Nodes[0].ID != "node-a" || ov.Nodes[1].ID != "node-b" {
		t.Fatalf("nodes %+v, want node-a and node-b", ov.Nodes)
	}
	na, nb := ov.Nodes[0], ov.Nodes[1]
	if !na.Live || na.Health == nil || na.Health.Status != 200 || na.Health.Clients != 3 || !na.Health.Checks["store"].OK {
		t.Fatalf("node-a: %+v health %+v", na, na.Health)
	}
	if na.Rates == nil || na.Rates.MessagesIn <= 0 || na.Rates.MessagesOut <= na.Rates.MessagesIn {
		t.Fatalf("node-a rates %+v, want growing counters as rates", na.Rates)
	}
	if nb.Health == nil || nb.Health.Status != 503 || nb.Health.Checks["disk"].OK {
		t.Fatalf("node-b health %+v, want its 503 report", nb.Health)
	}
	if ov.Monitor.Leader != "mon-t" || !strings.Contains(string(ov.Monitor.State), `"rounds":7`) || ov.Monitor.Error != "" {
		t.Fatalf("monitor %+v", ov.Monitor)
	}
	mb := ov.Mailboxes
	if !mb.Complete || mb.Mailboxes != 3 || mb.Messages != 9 || len(mb.Deepest) != 2 ||
		mb.Deepest[0] != (store.MailboxDepth{Client: "deep", Depth: 5}) || mb.Deepest[1].Client != "mid" {
		t.Fatalf("mailboxes %+v", mb)
	}
	if mb.Buckets[0] != (router.DepthBucket{Min: 1, Max: 1, Count: 1}) || mb.Buckets[1] != (router.DepthBucket{Min: 2, Max: 10, Count: 2}) {
		t.Fatalf("depth buckets %+v", mb.Buckets)
	}

	// A quarantine: shown with its reason, who decided and the evidence; the node is still
	// shown once it has left the live set.
	q := coord.Quarantine{Node: "node-b", Reason: "disk errors", At: time.Now().UTC(), By: "ops@host", Evidence: json.RawMessage(`{"manual":true}`)}
	if err := f.cl.c.SetQuarantine(ctx, q, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.cl.c.Release(context.Background(), "node-b") })
	// Withdraw acts on a mark the registration has seen (without one it does nothing), so
	// wait for it as the node does.
	for {
		st, changed := regB.Status()
		if st.Mark != nil {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("node-b's registration never saw its mark: %+v", st)
		}
	}
	if err := regB.Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		ov, _ := get()
		if len(ov.Quarantines) != 1 || ov.Quarantines[0].By != "ops@host" || string(ov.Quarantines[0].Evidence) != `{"manual":true}` {
			return fmt.Errorf("quarantines %+v", ov.Quarantines)
		}
		if len(ov.Nodes) != 2 || ov.Nodes[1].ID != "node-b" || ov.Nodes[1].Live || ov.Nodes[1].Health == nil {
			return fmt.Errorf("nodes %+v: want node-b shown, not live, with its health", ov.Nodes)
		}
		return nil
	})
	// Released, and gone from the live set: forgotten.
	if err := f.cl.c.Release(ctx, "node-b"); err != nil {
		t.Fatal(err)
	}
	if err := regB.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if ov, _ := get(); len(ov.Nodes) != 1 || len(ov.Quarantines) != 0 {
			return fmt.Errorf("nodes %d, quarantines %d", len(ov.Nodes), len(ov.Quarantines))
		}
		return nil
	})
}

// TestDashboardOverviewShared: many viewers at once share one build, so each node's
// /healthz is read once per Cache.
func TestDashboardOverviewShared(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	d := newDashboard(t, f, func(c *router.DashboardConfig) { c.Cache = time.Hour })
	var reads atomic.Int64
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		reads.Add(1)
		fmt.Fprint(w, `{"ready":true,"state":"registered","checks":{}}`)
	}))
	t.Cleanup(admin.Close)
	register(t, f, "node-s", admin.Listener.Addr().String())
	done := make(chan router.Overview)
	for range 20 {
		go func() { done <- d.Overview(t.Context()) }()
	}
	for range 20 {
		if ov := <-done; len(ov.Nodes) != 1 || ov.Nodes[0].Health == nil {
			t.Fatalf("overview %+v", ov)
		}
	}
	if n := reads.Load(); n != 1 {
		t.Fatalf("20 viewers read /healthz %d times, want once", n)
	}
}

// TestDashboardAuth: the page needs no token and holds no data; the overview, its stream
// and the API need one.
func TestDashboardAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	d := newDashboard(t, f, nil)
	const tok = "dashboard-test-token-0123456789"
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("ops "+tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := router.LoadTokens(path, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	h := d.AuthHandler(tokens)
	do := func(method, path, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("GET", "/", ""); rec.Code != http.StatusFound || rec.Header().Get("Location") != "/ui" {
		t.Fatalf("GET /: %d %v, want a redirect to /ui", rec.Code, rec.Header())
	}
	for path, ct := range map[string]string{"/ui": "text/html", "/ui/app.js": "text/javascript", "/ui/style.css": "text/css"} {
		rec := do("GET", path, "")
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), ct) {
			t.Fatalf("GET %s without a token: %d %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("GET %s: content security policy %q", path, csp)
		}
	}
	for _, path := range []string{"/ui/nothing.js", "/ui/%2e%2e%2fhttp.go", "/ui/%2e%2e"} {
		if rec := do("GET", path, ""); rec.Code != 404 {
			t.Fatalf("GET %s: %d, want 404", path, rec.Code)
		}
	}
	for _, path := range []string{"/v1/dashboard", "/v1/dashboard/events", "/v1/nodes", "/v1/openapi.json", "/metrics"} {
		if rec := do("GET", path, ""); rec.Code != 401 {
			t.Fatalf("GET %s without a token: %d, want 401", path, rec.Code)
		}
		if rec := do("GET", path, "wrong-token-wrong-token"); rec.Code != 401 {
			t.Fatalf("GET %s with a wrong token: %d, want 401", path, rec.Code)
		}
	}
	if rec := do("GET", "/v1/dashboard", tok); rec.Code != 200 {
		t.Fatalf("GET /v1/dashboard with the token: %d %s", rec.Code, rec.Body)
	}
	if rec := do("GET", "/healthz", ""); rec.Code != 200 {
		t.Fatalf("GET /healthz without a token: %d", rec.Code)
	}
	if rec := do("GET", "/no/such/thing", tok); rec.Code != 404 {
		t.Fatalf("an unknown path: %d, want 404", rec.Code)
	}
}

// TestDashboardStream: over a real HTTP server with a 1s read timeout, the stream sends an
// overview every Refresh for longer than the read timeout, and Shutdown ends it at once.
func TestDashboardStream(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *router.Config) { c.HTTP.ReadTimeout, c.HTTP.ReadHeaderTimeout = time.Second, time.Second })
	d := newDashboard(t, f, func(c *router.DashboardConfig) { c.Refresh, c.Cache = 100*time.Millisecond, 50*time.Millisecond })
	srv := f.r.HTTPServer(d.Handler())
	srv.RegisterOnShutdown(d.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })

	resp, err := http.Get("http://" + l.Addr().String() + "/v1/dashboard/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	start := time.Now()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	events := 0
	for time.Since(start) < 2500*time.Millisecond && sc.Scan() {
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var ov router.Overview
			if err := json.Unmarshal([]byte(data), &ov); err != nil || ov.At.IsZero() {
				t.Fatalf("event data %q: %v", data, err)
			}
			events++
		}
	}
	if elapsed := time.Since(start); elapsed < 2500*time.Millisecond || events < 15 {
		t.Fatalf("stream ended after %v with %d events (%v); want it to outlast the 1s read timeout at 10 a second", elapsed, events, sc.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a stream open: %v", err)
	}
	if took := time.Since(shut); took > 2*time.Second {
		t.Fatalf("shutdown took %v with a stream open", took)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Logf("stream after shutdown: %v", err)
	}
}

// TestDashboardStreamCap: streams beyond MaxStreams are refused with 503.
func TestDashboardStreamCap(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	d := newDashboard(t, f, func(c *router.DashboardConfig) { c.MaxStreams = 1 })
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	first, err := http.Get(srv.URL + "/v1/dashboard/events")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	second, err := http.Get(srv.URL + "/v1/dashboard/events")
	if err != nil {
		t.Fatal(err)
	}
	second.Body.Close()
	if first.StatusCode != 200 || second.StatusCode != 503 {
		t.Fatalf("two streams with a cap of one: %d then %d, want 200 then 503", first.StatusCode, second.StatusCode)
	}
	d.Close() // ends the first stream
	if _, err := io.Copy(io.Discard, first.Body); err != nil {
		t.Fatalf("first stream after Close: %v", err)
	}
}

// TestOpenAPIAnswersConform: the API's real answers match the schemas the OpenAPI document
// gives them.
func TestOpenAPIAnswersConform(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	h := newDashboard(t, f, nil).Handler()
	register(t, f, "node-c", "127.0.0.1:1") // an admin address nothing answers on
	for _, c := range []struct {
		method, path, body string
		code               int
		schema             string
	}{
		{"POST", "/v1/messages", `{"to":"conform","payload":"x","ttl":"1h"}`, 200, "Result"},
		{"POST", "/v1/messages", `{"to":"conform","qos":2}`, 400, "Error"},
		{"POST", "/v1/messages/batch", `{"messages":[{"to":"conform"},{"to":"other","payload_base64":"AAE="}]}`, 200, "BatchAnswer"},
		{"POST", "/v1/messages/batch", `{"messages":[{"to":"conform","max_wait":"1s"}]}`, 400, "Error"},
		{"GET", "/v1/clients/conform", "", 200, "Client"},
		{"GET", "/v1/clients/conform/mailbox?limit=5", "", 200, "MailboxView"},
		{"GET", "/v1/nodes", "", 200, "Nodes"},
		{"GET", "/healthz", "", 200, "RouterHealth"},
		{"GET", "/v1/dashboard", "", 200, "Overview"},
		{"GET", "/no/such/endpoint", "", 404, "Error"},
		{"GET", "/v1/messages", "", 405, "Error"},
	} {
		var rd io.Reader
		if c.body != "" {
			rd = strings.NewReader(c.body)
		}
		req := httptest.NewRequest(c.method, c.path, rd)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.code {
			t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, rec.Code, rec.Body, c.code)
		}
		conforms(t, c.schema, rec.Body.Bytes())
	}
}
