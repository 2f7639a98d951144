package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/embedded"
	"github.com/switchboard-mqtt/switchboard/watcher"
)

var shared testenv.Shared

// The router, the watcher, the coordinator and the stores all run goroutines: check that
// closing them leaves none behind.
// The package's tests wait on leases, keep-alives and timeouts far more than they compute.
func TestMain(m *testing.M) {
	testenv.WaitingTests(8)
	shared.MainLeakCheck(m)
}

// openStore opens an embedded store. The router's tests check the router; the store is
// incidental (its behaviour is the store suites'), so it needs no server.
func openStore(t testing.TB) *embedded.Store { return testenv.EmbeddedStore(t) }

// openCoord opens a client, with a session of its own, of the in-memory cluster cl.
func openCoord(t testing.TB, cl *memcoord.Cluster) *memcoord.Coordinator {
	t.Helper()
	return testenv.OpenMemCoord(t, cl)
}

// cluster is a fresh in-memory cluster, with a client and a watcher on it.
type cluster struct {
	c *memcoord.Coordinator
	w *watcher.Watcher
}

func newCluster(t testing.TB) cluster {
	t.Helper()
	c := openCoord(t, memcoord.NewCluster())
	w, err := watcher.Start(testenv.Context(t, 10*time.Second), c, testenv.Logger(t))
	if err != nil {
		t.Fatalf("watcher.Start: %v", err)
	}
	t.Cleanup(w.Close)
	return cluster{c, w}
}

func newRouter(t testing.TB, st store.Store, w *watcher.Watcher, tune func(*router.Config)) *router.Router {
	t.Helper()
	cfg := router.DefaultConfig()
	if tune != nil {
		tune(&cfg)
	}
	r, err := router.New(cfg, st, w, testenv.Logger(t))
	if err != nil {
		t.Fatalf("router.New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// fixture is a router on an embedded store and a fresh in-memory cluster.
type fixture struct {
	st *embedded.Store
	cl cluster
	r  *router.Router
	h  http.Handler
}

func newFixture(t *testing.T, tune func(*router.Config)) fixture {
	t.Helper()
	st := openStore(t)
	cl := newCluster(t)
	r := newRouter(t, st, cl.w, tune)
	return fixture{st, cl, r, r.Handler()}
}

// call sends one request through the handler and decodes a JSON answer into out (if not
// nil). It fails the test if the answer is not JSON.
func call(t *testing.T, h http.Handler, method, path, body string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: content type %q, body %s", method, path, ct, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, rec.Body, err)
		}
	}
	return rec.Code
}

func peekAll(t *testing.T, st store.Store, client string) []store.Message {
	t.Helper()
	ms, err := st.Peek(testenv.Context(t, 5*time.Second), client, 0, 1000)
	if err != nil {
		t.Fatalf("peek %s: %v", client, err)
	}
	return ms
}

// TestSendDefaults: a message with only "to" and a payload goes to inbox/<to> at QoS 1 with
// a 24h expiry; the client is offline, so it is queued in its mailbox.
func TestSendDefaults(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	var res router.Result
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"alice","payload":"hello"}`, &res); code != 200 {
		t.Fatalf("status %d, %+v", code, res)
	}
	if res.ID == "" || res.Status != router.Queued || res.Depth != 1 || res.Duplicate || res.Node != "" {
		t.Fatalf("result %+v, want a new id queued at depth 1", res)
	}
	ms := peekAll(t, f.st, "alice")
	if len(ms) != 1 {
		t.Fatalf("mailbox holds %d messages, want 1", len(ms))
	}
	m := ms[0]
	if m.ID != res.ID || m.To != "alice" || m.Topic != "inbox/alice" || m.QoS != 1 || string(m.Payload) != "hello" {
		t.Fatalf("stored %+v, want topic inbox/alice, qos 1, payload hello, id %s", m, res.ID)
	}
	if m.TTL <= 24*time.Hour-time.Minute || m.TTL > 24*time.Hour {
		t.Fatalf("time left %v, want just under 24h", m.TTL)
	}
	if d := time.Since(m.Accepted); d < 0 || d > time.Minute {
		t.Fatalf("accepted at %v, not now", m.Accepted)
	}

	// A retry with the client's own id is recognised, not stored twice.
	body := `{"to":"alice","id":"msg-1","payload_base64":"AAEC","topic":"devices/alice/cmd","qos":0}`
	if code := call(t, f.h, "POST", "/v1/messages", body, &res); code != 200 || res.ID != "msg-1" || res.Duplicate {
		t.Fatalf("first send with an id: %d %+v", code, res)
	}
	if code := call(t, f.h, "POST", "/v1/messages", body, &res); code != 200 || !res.Duplicate || res.Depth != 2 {
		t.Fatalf("retry with the same id: %d %+v, want a duplicate at depth 2", code, res)
	}
	m = peekAll(t, f.st, "alice")[1]
	if m.Topic != "devices/alice/cmd" || m.QoS != 0 || string(m.Payload) != "\x00\x01\x02" {
		t.Fatalf("stored %+v, want the topic, qos 0 and the decoded payload", m)
	}
}

// TestSendTTL: ttl is a duration string or a number of seconds.
func TestSendTTL(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, tc := range []struct {
		client, ttl string
		want        time.Duration
	}{
		{"t-string", `"90s"`, 90 * time.Second},
		{"t-number", `90`, 90 * time.Second},
		{"t-fraction", `2.5`, 2500 * time.Millisecond},
		{"t-hours", `"36h"`, 36 * time.Hour},
	} {
		var res router.Result
		body := fmt.Sprintf(`{"to":%q,"ttl":%s}`, tc.client, tc.ttl)
		if code := call(t, f.h, "POST", "/v1/messages", body, &res); code != 200 {
			t.Fatalf("ttl %s: status %d", tc.ttl, code)
		}
		ms := peekAll(t, f.st, tc.client)
		if len(ms) != 1 {
			t.Fatalf("ttl %s: %d messages stored", tc.ttl, len(ms))
		}
		if got := ms[0].TTL; got > tc.want || got < tc.want-time.Minute {
			t.Fatalf("ttl %s: %v left, want just under %v", tc.ttl, got, tc.want)
		}
	}
}

// TestSendRefusals: every malformed request is a 400 naming the offending field, and
// nothing is stored.
func TestSendRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *router.Config) { c.MaxPayload = 16; c.MaxBatch = 3 })
	for _, tc := range []struct {
		name, ctype, body, field string
	}{
		{"missing to", "", `{"payload":"x"}`, "to"},
		{"slash in to", "", `{"to":"a/b"}`, "to"},
		{"wildcard in to", "", `{"to":"a+"}`, "to"},
		{"to not a string", "", `{"to":5}`, "to"},
		{"bad id", "", `{"to":"a","id":"no spaces"}`, "id"},
		{"long id", "", `{"to":"a","id":"` + strings.Repeat("i", 65) + `"}`, "id"},
		{"wildcard topic", "", `{"to":"a","topic":"x/+/y"}`, "topic"},
		{"dollar topic", "", `{"to":"a","topic":"$SYS/x"}`, "topic"},
		{"both payloads", "", `{"to":"a","payload":"x","payload_base64":"eA=="}`, "payload"},
		{"bad base64", "", `{"to":"a","payload_base64":"!!!"}`, "payload_base64"},
		{"payload too large", "", `{"to":"a","payload":"` + strings.Repeat("p", 17) + `"}`, "payload"},
		{"qos 2", "", `{"to":"a","qos":2}`, "qos"},
		{"qos 7", "", `{"to":"a","qos":7}`, "qos"},
		{"ttl word", "", `{"to":"a","ttl":"soon"}`, "ttl"},
		{"ttl too short", "", `{"to":"a","ttl":0.5}`, "ttl"},
		{"ttl too long", "", `{"to":"a","ttl":"721h"}`, "ttl"},
		{"ttl negative", "", `{"to":"a","ttl":-5}`, "ttl"},
		{"ttl bool", "", `{"to":"a","ttl":true}`, "ttl"},
		{"unknown field", "", `{"to":"a","priority":1}`, "priority"},
		{"malformed", "", `{"to":`, "body"},
		{"not json", "", `hello`, "body"},
		{"trailing data", "", `{"to":"a"} {"to":"b"}`, "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(tc.body))
			ct := tc.ctype
			if ct == "" {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			var eb router.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
				t.Fatalf("answer is not JSON: %s", rec.Body)
			}
			if rec.Code != 400 || eb.Field != tc.field || eb.Error == "" || eb.Index != nil {
				t.Fatalf("%s → %d %+v, want 400 with field %q", tc.body, rec.Code, eb, tc.field)
			}
		})
	}
	var eb router.ErrorBody
	if code := call(t, f.h, "POST", "/v1/messages", "", &eb); code != 400 || eb.Field != "body" {
		t.Fatalf("empty body: %d %+v", code, eb)
	}
	// A body that is not JSON by its content type is a 415, as HTTP has it, still naming the
	// field.
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded"} {
		req := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(`{"to":"a"}`))
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		eb = router.ErrorBody{}
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || rec.Code != 415 || eb.Field != "body" {
			t.Fatalf("content type %s → %d %s, want 415 with field body", ct, rec.Code, rec.Body)
		}
	}

	// Batches: an empty or oversized batch, and a bad item, which refuses the whole batch.
	if code := call(t, f.h, "POST", "/v1/messages/batch", `{"messages":[]}`, &eb); code != 400 || eb.Field != "messages" {
		t.Fatalf("empty batch: %d %+v", code, eb)
	}
	four := `{"messages":[{"to":"a"},{"to":"a"},{"to":"a"},{"to":"a"}]}`
	if code := call(t, f.h, "POST", "/v1/messages/batch", four, &eb); code != 400 || eb.Field != "messages" {
		t.Fatalf("batch over the maximum: %d %+v", code, eb)
	}
	eb = router.ErrorBody{}
	bad := `{"messages":[{"to":"a","payload":"ok"},{"to":"a","qos":2}]}`
	if code := call(t, f.h, "POST", "/v1/messages/batch", bad, &eb); code != 400 || eb.Field != "qos" ||
		eb.Index == nil || *eb.Index != 1 {
		t.Fatalf("batch with a bad second item: %d %+v, want 400 field qos index 1", code, eb)
	}

	if d, err := f.st.Depth(testenv.Context(t, 5*time.Second), "a"); err != nil || d != 0 {
		t.Fatalf("refused requests stored %d messages for a (%v)", d, err)
	}
}

// TestBatchKeepsPerClientOrder: a batch interleaving three clients answers in request
// order, and each client's mailbox holds its messages in batch order.
func TestBatchKeepsPerClientOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	clients := []string{"c1", "c2", "c3"}
	const perClient = 20
	var items []router.Request
	for i := range perClient {
		for _, c := range clients {
			p := fmt.Sprintf("%s-%02d", c, i)
			items = append(items, router.Request{To: c, Payload: &p})
		}
	}
	b, _ := json.Marshal(router.BatchRequest{Messages: items})
	var out struct {
		Results []router.BatchItem `json:"results"`
	}
	if code := call(t, f.h, "POST", "/v1/messages/batch", string(b), &out); code != 200 {
		t.Fatalf("batch status %d: %+v", code, out)
	}
	if len(out.Results) != len(items) {
		t.Fatalf("%d results for %d messages", len(out.Results), len(items))
	}
	for i, r := range out.Results {
		wantDepth := i/len(clients) + 1
		if r.Code != 200 || r.Error != "" || r.Status != router.Queued || r.Depth != wantDepth {
			t.Fatalf("result %d (%s) = %+v, want queued at depth %d", i, *items[i].Payload, r, wantDepth)
		}
	}
	for _, c := range clients {
		var mb router.MailboxView
		if code := call(t, f.h, "GET", "/v1/clients/"+c+"/mailbox?limit=100", "", &mb); code != 200 {
			t.Fatalf("mailbox %s: %d", c, code)
		}
		if mb.Depth != perClient || len(mb.Messages) != perClient {
			t.Fatalf("mailbox %s: depth %d with %d messages, want %d", c, mb.Depth, len(mb.Messages), perClient)
		}
		for i, m := range mb.Messages {
			if want := fmt.Sprintf("%s-%02d", c, i); string(m.Payload) != want {
				t.Fatalf("mailbox %s[%d] = %q, want %q: batch order lost", c, i, m.Payload, want)
			}
		}
	}
}

// TestClientUnknown: a client never seen is offline with an empty mailbox; a bad id is a 400.
func TestClientUnknown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	var c router.Client
	if code := call(t, f.h, "GET", "/v1/clients/nobody", "", &c); code != 200 {
		t.Fatalf("status %d", code)
	}
	if c != (router.Client{Client: "nobody"}) {
		t.Fatalf("unknown client = %+v, want offline with depth 0", c)
	}
	var eb router.ErrorBody
	if code := call(t, f.h, "GET", "/v1/clients/a+b", "", &eb); code != 400 || eb.Field != "id" {
		t.Fatalf("bad client id: %d %+v, want 400 field id", code, eb)
	}
}

// TestClientOnlineOnlyOnLiveEpoch: a client's presence counts only while its node is live
// under the epoch the presence names.
func TestClientOnlineOnlyOnLiveEpoch(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	m := coordtest.NewMember("node-1")
	reg, err := f.cl.c.Register(testenv.Context(t, 10*time.Second), m)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := reg.Status()
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, live := f.cl.w.Live("node-1", st.Epoch); !live {
			return fmt.Errorf("node-1@%#x not in the watcher's set", st.Epoch)
		}
		return nil
	})
	since := time.Now().UTC().Truncate(time.Millisecond)
	for _, p := range []store.Presence{
		{Client: "live-client", Node: "node-1", Epoch: st.Epoch, Session: "s1", Since: since},
		{Client: "stale-client", Node: "node-1", Epoch: st.Epoch - 1, Session: "s2", Since: since},
		{Client: "gone-client", Node: "node-9", Epoch: st.Epoch, Session: "s3", Since: since},
	} {
		if _, err := f.st.Connect(testenv.Context(t, 5*time.Second), p); err != nil {
			t.Fatal(err)
		}
	}
	var c router.Client
	if code := call(t, f.h, "GET", "/v1/clients/live-client", "", &c); code != 200 ||
		!c.Online || c.Node != "node-1" || c.Epoch != st.Epoch || !c.Since.Equal(since) {
		t.Fatalf("live-client: %d %+v, want online on node-1@%#x since %v", code, c, st.Epoch, since)
	}
	for _, id := range []string{"stale-client", "gone-client"} {
		c = router.Client{}
		if code := call(t, f.h, "GET", "/v1/clients/"+id, "", &c); code != 200 || c.Online || c.Node != "" {
			t.Fatalf("%s: %d %+v, want offline", id, code, c)
		}
	}
	if err := reg.Deregister(testenv.Context(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		c = router.Client{}
		call(t, f.h, "GET", "/v1/clients/live-client", "", &c)
		if c.Online {
			return fmt.Errorf("live-client still online after node-1 left: %+v", c)
		}
		return nil
	})
}

// TestNodes: GET /v1/nodes lists the live members the watcher holds.
func TestNodes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	var out struct {
		Nodes []coord.Member `json:"nodes"`
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/nodes", nil))
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"nodes":[]}` {
		t.Fatalf("no nodes: %d %s, want an empty list", rec.Code, rec.Body)
	}
	m := coordtest.NewMember("node-a")
	reg, err := f.cl.c.Register(testenv.Context(t, 10*time.Second), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Deregister(context.Background()) })
	st, _ := reg.Status()
	m.Epoch = st.Epoch
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		out.Nodes = nil
		if code := call(t, f.h, "GET", "/v1/nodes", "", &out); code != 200 {
			return fmt.Errorf("status %d", code)
		}
		if len(out.Nodes) != 1 || out.Nodes[0] != m {
			return fmt.Errorf("nodes %+v, want [%+v]", out.Nodes, m)
		}
		return nil
	})
}

type health struct {
	Ready bool   `json:"ready"`
	Store string `json:"store"`
	Nodes int    `json:"nodes"`
}

// TestHealthz: 200 while the store answers; 503 naming the store's error once it fails,
// and a send refused with 503, not accepted. (The same with a Redis stopped for real is
// integration's TestRedisDownRefusesWithoutLoss.)
func TestHealthz(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	cl := newCluster(t)
	h := newRouter(t, st, cl.w, nil).Handler()
	var hl health
	if code := call(t, h, "GET", "/healthz", "", &hl); code != 200 || !hl.Ready || hl.Store != "ok" || hl.Nodes != 0 {
		t.Fatalf("healthz with the store up: %d %+v", code, hl)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	pingErr := st.Ping(t.Context())
	if pingErr == nil {
		t.Fatal("a closed store answers its ping")
	}
	hl = health{}
	if code := call(t, h, "GET", "/healthz", "", &hl); code != 503 || hl.Ready || !strings.Contains(hl.Store, pingErr.Error()) {
		t.Fatalf("healthz with the store closed: %d %+v, want 503 with the store's error %q", code, hl, pingErr)
	}
	var eb router.ErrorBody
	if code := call(t, h, "POST", "/v1/messages", `{"to":"x"}`, &eb); code != 503 || !strings.Contains(eb.Error, "not accepted") {
		t.Fatalf("send with the store closed: %d %+v", code, eb)
	}
}

// TestUnknownPath: anything the API does not serve is a JSON 404 naming the request.
func TestUnknownPath(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v2/messages"}, {"POST", "/v1/message"}, {"DELETE", "/nothing/here"},
	} {
		var eb router.ErrorBody
		if code := call(t, f.h, tc.method, tc.path, "", &eb); code != 404 ||
			!strings.Contains(eb.Error, tc.method+" "+tc.path) {
			t.Fatalf("%s %s: %d %+v, want a JSON 404 naming it", tc.method, tc.path, code, eb)
		}
	}
}
