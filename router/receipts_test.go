package router_test

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
)

// receiptFixture is a router on an embedded store wrapped with fake receipts.
type receiptFixture struct {
	st receiptStore
	r  *router.Router
	h  http.Handler
}

func newReceiptFixture(t *testing.T, tune func(*router.Config)) receiptFixture {
	t.Helper()
	st := newReceiptStore(openStore(t))
	cl := newCluster(t)
	r := newRouter(t, st, cl.w, tune)
	return receiptFixture{st, r, r.Handler()}
}

// TestReceiptFlag: a message sends Receipt to the store unless the request says
// receipt:false, in a single send, a batch and a fan-out; with receipts turned off on the
// router, never.
func TestReceiptFlag(t *testing.T) {
	t.Parallel()
	f := newReceiptFixture(t, nil)
	for _, body := range []string{
		`{"to":"rf-1","id":"on","payload":"x"}`,
		`{"to":"rf-1","id":"off","payload":"x","receipt":false}`,
		`{"to":"rf-1","id":"yes","payload":"x","receipt":true}`,
		`{"to_many":["rf-2"],"id":"many-off","payload":"x","receipt":false}`,
		`{"to_many":["rf-3"],"id":"many-on","payload":"x"}`,
	} {
		if code := call(t, f.h, "POST", "/v1/messages", body, nil); code != 200 {
			t.Fatalf("%s: %d", body, code)
		}
	}
	if code := call(t, f.h, "POST", "/v1/messages/batch", `{"messages":[{"to":"rf-4","id":"b-on","payload":"x"},{"to":"rf-4","id":"b-off","payload":"x","receipt":false}]}`, nil); code != 200 {
		t.Fatalf("batch: %d", code)
	}
	want := map[string]bool{"on": true, "off": false, "yes": true, router.FanoutID("many-off", "rf-2"): false,
		router.FanoutID("many-on", "rf-3"): true, "b-on": true, "b-off": false}
	got := map[string]bool{}
	for _, m := range f.st.Appended() {
		got[m.ID] = m.Receipt
	}
	for id, w := range want {
		if g, ok := got[id]; !ok || g != w {
			t.Errorf("message %s: appended %v with Receipt %v, want Receipt %v", id, ok, g, w)
		}
	}

	off := newReceiptFixture(t, func(c *router.Config) { c.Receipts.Enabled = false })
	if code := call(t, off.h, "POST", "/v1/messages", `{"to":"rf-5","id":"on","payload":"x","receipt":true}`, nil); code != 200 {
		t.Fatalf("receipts off: %d", code)
	}
	if ms := off.st.Appended(); len(ms) != 1 || ms[0].Receipt {
		t.Fatalf("receipts off: appended %+v; want one message without Receipt", ms)
	}
	if code := call(t, off.h, "GET", "/v1/messages/on?to=rf-5", "", nil); code != http.StatusNotImplemented {
		t.Fatalf("GET /v1/messages with receipts off: %d, want 501", code)
	}
}

// TestRejectedReceiptForFullMailbox: a message a full mailbox refuses (507) gets its
// rejected receipt, with the reason, before the answer; the one queued before it stays
// pending, and one sent with receipt:false gets none.
func TestRejectedReceiptForFullMailbox(t *testing.T) {
	t.Parallel()
	f := newReceiptFixture(t, func(c *router.Config) { c.MailboxLimit = 1 })
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"full-1","id":"m1","payload":"x"}`, nil); code != 200 {
		t.Fatalf("first: %d", code)
	}
	var e router.ErrorBody
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"full-1","id":"m2","payload":"x"}`, &e); code != http.StatusInsufficientStorage {
		t.Fatalf("second: %d %+v, want 507", code, e)
	}
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"full-1","id":"m3","payload":"x","receipt":false}`, nil); code != http.StatusInsufficientStorage {
		t.Fatalf("third: %d, want 507", code)
	}
	log := f.st.Log()
	if len(log) != 1 || log[0].ID != "m2" || log[0].Client != "full-1" || log[0].Status != store.ReceiptRejected ||
		!strings.Contains(log[0].Detail, "mailbox full") {
		t.Fatalf("receipt log %+v; want one rejected receipt for m2 naming the full mailbox", log)
	}
	var v router.MessageView
	if code := call(t, f.h, "GET", "/v1/messages/m1?to=full-1", "", &v); code != 200 || v.State != "pending" {
		t.Fatalf("m1: %d %+v, want pending", code, v)
	}
}

// TestMessageState: GET /v1/messages/{id} answers pending with the time left, then the
// terminal receipt; 404 for a message it does not know; 400 naming to without it.
func TestMessageState(t *testing.T) {
	t.Parallel()
	f := newReceiptFixture(t, nil)
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"ms-1","id":"q1","payload":"x","ttl":"1h"}`, nil); code != 200 {
		t.Fatalf("send: %d", code)
	}
	var raw map[string]any
	if code := call(t, f.h, "GET", "/v1/messages/q1?to=ms-1", "", &raw); code != 200 || raw["state"] != "pending" ||
		raw["id"] != "q1" || raw["to"] != "ms-1" {
		t.Fatalf("pending: %d %v", code, raw)
	}
	if left, _ := raw["expires_in"].(float64); left <= 3500 || left > 3600 {
		t.Fatalf("pending: expires_in %v, want about 3600", raw["expires_in"])
	}
	if _, ok := raw["node"]; ok {
		t.Fatalf("pending: %v has a node", raw)
	}
	if err := f.st.Finish(testenv.Context(t, 5*time.Second), store.Receipt{Client: "ms-1", ID: "q1",
		Status: store.ReceiptDelivered, Node: "node-a", Attempts: 2}); err != nil {
		t.Fatal(err)
	}
	var v router.MessageView
	if code := call(t, f.h, "GET", "/v1/messages/q1?to=ms-1", "", &v); code != 200 || v.State != "delivered" ||
		v.Node != "node-a" || v.Attempts != 2 || v.Cursor == "" || v.At.IsZero() || v.ExpiresIn != nil {
		t.Fatalf("delivered: %d %+v", code, v)
	}
	var e router.ErrorBody
	if code := call(t, f.h, "GET", "/v1/messages/q1?to=someone-else", "", &e); code != 404 {
		t.Fatalf("unknown: %d %+v, want 404", code, e)
	}
	if code := call(t, f.h, "GET", "/v1/messages/q1", "", &e); code != 400 || e.Field != "to" {
		t.Fatalf("without to: %d %+v, want 400 naming to", code, e)
	}
	if code := call(t, f.h, "GET", "/v1/messages/bad%20id?to=ms-1", "", &e); code != 400 || e.Field != "id" {
		t.Fatalf("bad id: %d %+v, want 400 naming id", code, e)
	}
}

// hook is a webhook receiver that verifies every request's signature and fails the first
// fail requests with a 500.
type hook struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	fail   int // requests still to fail; -1: all
	calls  int
	got    chan []router.ReceiptEvent // every accepted batch
}

func (h *hook) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	ts := req.Header.Get("X-Switchboard-Timestamp")
	mac := hmac.New(sha256.New, []byte(h.secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if sig := req.Header.Get("X-Switchboard-Signature"); !hmac.Equal([]byte(sig), []byte(want)) || ts == "" ||
		req.Header.Get("Content-Type") != "application/json" {
		h.t.Errorf("webhook request: signature %q, timestamp %q, content type %q; want signature %q",
			sig, ts, req.Header.Get("Content-Type"), want)
		http.Error(w, "bad signature", 401)
		return
	}
	h.mu.Lock()
	h.calls++
	fail := h.fail != 0
	if h.fail > 0 {
		h.fail--
	}
	h.mu.Unlock()
	if fail {
		http.Error(w, "not now", 500)
		return
	}
	var b struct {
		Receipts []router.ReceiptEvent `json:"receipts"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		h.t.Errorf("webhook body %s: %v", body, err)
	}
	h.got <- b.Receipts
	w.WriteHeader(204)
}

func (h *hook) Calls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

func webhookFixture(t *testing.T, h *hook, attempts int) receiptFixture {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return newReceiptFixture(t, func(c *router.Config) {
		c.Receipts.Webhook.URL, c.Receipts.Webhook.Secret = srv.URL+"/hook", h.secret
		c.Receipts.Webhook.Attempts = attempts
		c.Receipts.Webhook.MinBackoff, c.Receipts.Webhook.MaxBackoff = time.Millisecond, 10*time.Millisecond
	})
}

// TestWebhookRetriesThenDelivers: a receiver that fails the first two requests gets the
// batch on the third, signed as documented (the receiver checks every request), and the
// consumer's cursor moves to the batch's last receipt with no dead letters.
func TestWebhookRetriesThenDelivers(t *testing.T) {
	t.Parallel()
	h := &hook{t: t, secret: "s3cret", fail: 2, got: make(chan []router.ReceiptEvent, 10)}
	f := webhookFixture(t, h, 8)
	ctx := testenv.Context(t, 30*time.Second)
	if err := f.st.Finish(ctx,
		store.Receipt{Client: "wh-1", ID: "a", Status: store.ReceiptDelivered, Node: "n1", Attempts: 1},
		store.Receipt{Client: "wh-1", ID: "b", Status: store.ReceiptExpired}); err != nil {
		t.Fatal(err)
	}
	var batch []router.ReceiptEvent
	select {
	case batch = <-h.got:
	case <-ctx.Done():
		t.Fatal("no batch delivered")
	}
	if len(batch) != 2 || batch[0].ID != "a" || batch[0].To != "wh-1" || batch[0].Status != "delivered" || batch[0].Node != "n1" ||
		batch[0].Attempts != 1 || batch[1].ID != "b" || batch[1].Status != "expired" || batch[1].Cursor == "" {
		t.Fatalf("batch %+v", batch)
	}
	if n := h.Calls(); n != 3 {
		t.Fatalf("%d requests; want 3 (two failed, then the one taken)", n)
	}
	testenv.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		c, _ := f.st.Consumer(ctx, "webhook")
		if c.Cursor != batch[1].Cursor || c.Dead != 0 {
			return fmt.Errorf("consumer %+v; want cursor %s, no dead letters", c, batch[1].Cursor)
		}
		return nil
	})
	reg := f.r.Registry()
	if sent, failed := counterValue(t, reg, "switchboard_router_webhook_attempts_total", "sent"), counterValue(t, reg, "switchboard_router_webhook_attempts_total", "failed"); sent != 1 || failed != 2 {
		t.Fatalf("attempts: %v sent, %v failed; want 1 and 2", sent, failed)
	}
}

// TestWebhookDeadLetters: when every attempt fails, the batch is counted as dead letters
// (in the consumer and the metric) after exactly Attempts requests, and the cursor moves
// past it, so the next receipt is posted.
func TestWebhookDeadLetters(t *testing.T) {
	t.Parallel()
	h := &hook{t: t, secret: "k", fail: 3, got: make(chan []router.ReceiptEvent, 10)}
	f := webhookFixture(t, h, 3)
	ctx := testenv.Context(t, 30*time.Second)
	if err := f.st.Finish(ctx,
		store.Receipt{Client: "dl-1", ID: "a", Status: store.ReceiptExpired},
		store.Receipt{Client: "dl-1", ID: "b", Status: store.ReceiptExpired}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		if c, _ := f.st.Consumer(ctx, "webhook"); c.Dead != 2 || c.Cursor != f.st.Log()[1].Cursor {
			return fmt.Errorf("consumer %+v; want 2 dead letters and the cursor past them", c)
		}
		return nil
	})
	if n := h.Calls(); n != 3 {
		t.Fatalf("%d requests; want 3, the attempts", n)
	}
	if got := counterValue(t, f.r.Registry(), "switchboard_router_webhook_dead_letters_total", ""); got != 2 {
		t.Fatalf("dead letters metric %v; want 2", got)
	}
	// The receiver is well again: the next receipt reaches it, and only it.
	if err := f.st.Finish(ctx, store.Receipt{Client: "dl-1", ID: "c", Status: store.ReceiptDelivered}); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-h.got:
		if len(b) != 1 || b[0].ID != "c" {
			t.Fatalf("after the dead letters: %+v; want only c", b)
		}
	case <-ctx.Done():
		t.Fatal("the receipt after the dead letters was not posted")
	}
}

// TestEventsResume: GET /v1/events from the oldest streams every receipt with its cursor
// as the event id; a new stream with Last-Event-ID (or ?after=) resumes after that cursor,
// with receipts recorded later; the default stream shows only receipts recorded after it
// started.
func TestEventsResume(t *testing.T) {
	t.Parallel()
	f := newReceiptFixture(t, nil)
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	ctx := testenv.Context(t, 30*time.Second)
	finish := func(id string) {
		t.Helper()
		if err := f.st.Finish(ctx, store.Receipt{Client: "ev-1", ID: id, Status: store.ReceiptDelivered, Node: "n1", Attempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		finish(id)
	}
	all := openEvents(t, ctx, srv.URL+"/v1/events?from=oldest", "")
	var got []sseEvent
	for range 3 {
		got = append(got, all.next(t))
	}
	for i, id := range []string{"a", "b", "c"} {
		if got[i].data.ID != id || got[i].id != got[i].data.Cursor || got[i].data.Status != "delivered" || got[i].data.To != "ev-1" {
			t.Fatalf("event %d: %+v; want %s with its cursor as id", i, got[i], id)
		}
	}
	tail := openEvents(t, ctx, srv.URL+"/v1/events", "")
	resumed := openEvents(t, ctx, srv.URL+"/v1/events", got[0].id)
	after := openEvents(t, ctx, srv.URL+"/v1/events?after="+got[1].id, "")
	finish("d")
	for _, c := range []struct {
		name string
		s    *eventStream
		want []string
	}{{"Last-Event-ID", resumed, []string{"b", "c", "d"}}, {"after", after, []string{"c", "d"}}, {"from now", tail, []string{"d"}}, {"from oldest", all, []string{"d"}}} {
		for _, id := range c.want {
			if ev := c.s.next(t); ev.data.ID != id {
				t.Fatalf("%s: event %+v; want %s", c.name, ev, id)
			}
		}
	}
	var e router.ErrorBody
	if code := call(t, f.h, "GET", "/v1/events?from=yesterday", "", &e); code != 400 || e.Field != "from" {
		t.Fatalf("from=yesterday: %d %+v", code, e)
	}
}

type sseEvent struct {
	id, event string
	data      router.ReceiptEvent
}

// eventStream reads server-sent events from one GET /v1/events.
type eventStream struct {
	sc    *bufio.Scanner
	close func() // ends the stream
}

func openEvents(t *testing.T, ctx context.Context, url, lastID string) *eventStream {
	t.Helper()
	sctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(sctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	end := func() { cancel(); resp.Body.Close() }
	t.Cleanup(end)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: %s %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	s := &eventStream{sc: bufio.NewScanner(resp.Body), close: end}
	// The stream opens with a comment: once it is read, the stream has its starting point.
	if !s.sc.Scan() || !strings.HasPrefix(s.sc.Text(), ":") || !s.sc.Scan() || s.sc.Text() != "" {
		t.Fatalf("GET %s: %q, %v; want a comment and a blank line first", url, s.sc.Text(), s.sc.Err())
	}
	return s
}

// next returns the next event, skipping comments; it fails the test when the stream ends.
func (s *eventStream) next(t *testing.T) sseEvent {
	t.Helper()
	var ev sseEvent
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if ev.event != "" {
				return ev
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
	t.Fatalf("the stream ended: %v", s.sc.Err())
	return ev
}

// TestWebhookConfig: a webhook URL must be https unless it is loopback, and needs a
// secret.
func TestWebhookConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url, secret string
		ok          bool
	}{
		{"https://hooks.example.com/x", "s", true},
		{"http://127.0.0.1:9/x", "s", true},
		{"http://localhost:9/x", "s", true},
		{"http://hooks.example.com/x", "s", false},
		{"https://hooks.example.com/x", "", false},
		{"ftp://hooks.example.com/x", "s", false},
	} {
		cfg := router.DefaultConfig()
		cfg.Receipts.Webhook.URL, cfg.Receipts.Webhook.Secret = c.url, c.secret
		if err := cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%s with secret %q: %v, want ok %v", c.url, c.secret, err, c.ok)
		}
	}
}

// counterValue reads a counter from reg: the one whose single label has the value label,
// or the unlabelled one when label is "".
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" && len(m.GetLabel()) == 0 || len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no counter %s{%s}", name, label)
	return 0
}

// TestSweeperExpires: the router's sweeper ends a message still pending after its expiry
// and the grace with an expired receipt, sweeping with the configured grace and retention.
func TestSweeperExpires(t *testing.T) {
	t.Parallel()
	f := newReceiptFixture(t, func(c *router.Config) {
		c.Receipts.Grace, c.Receipts.Retention, c.Receipts.SweepEvery = 0, time.Hour, 10*time.Millisecond
	})
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"sw-1","id":"short","payload":"x","ttl":"1s"}`, nil); code != 200 {
		t.Fatalf("send: %d", code)
	}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if log := f.st.Log(); len(log) != 1 || log[0].ID != "short" || log[0].Status != store.ReceiptExpired {
			return fmt.Errorf("receipt log %+v; want short expired", log)
		}
		return nil
	})
	sw := f.st.Sweeps()
	if o := sw[len(sw)-1]; o.Grace != 0 || o.Retention != time.Hour || o.Max != 1000 || o.Keep != "" {
		t.Fatalf("sweep options %+v", o)
	}
}

// TestSweeperKeepsWebhookCursor: with a webhook, a sweep never trims the log past the
// webhook consumer's cursor.
func TestSweeperKeepsWebhookCursor(t *testing.T) {
	t.Parallel()
	h := &hook{t: t, secret: "k", got: make(chan []router.ReceiptEvent, 10)}
	f := webhookFixture(t, h, 8)
	ctx := testenv.Context(t, 30*time.Second)
	if err := f.st.Finish(ctx, store.Receipt{Client: "kc-1", ID: "a", Status: store.ReceiptExpired}); err != nil {
		t.Fatal(err)
	}
	<-h.got
	cursor := f.st.Log()[0].Cursor
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		sw := f.st.Sweeps()
		if len(sw) == 0 || sw[len(sw)-1].Keep != cursor {
			return fmt.Errorf("sweeps %+v; want the last to keep %s", sw, cursor)
		}
		return nil
	})
}

// TestFinishFailureKeepsAnswer: when the store cannot record a receipt the router owes,
// the answer is the same (507 here) and the failure is counted.
func TestFinishFailureKeepsAnswer(t *testing.T) {
	t.Parallel()
	f := newReceiptFixture(t, func(c *router.Config) { c.MailboxLimit = 1 })
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"ff-1","payload":"x"}`, nil); code != 200 {
		t.Fatalf("first: %d", code)
	}
	f.st.failFinish(fmt.Errorf("finish: %w: injected by the test", store.ErrUnavailable))
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"ff-1","payload":"x"}`, nil); code != http.StatusInsufficientStorage {
		t.Fatalf("second: %d, want 507", code)
	}
	if n := counterValue(t, f.r.Registry(), "switchboard_router_receipt_errors_total", "finish"); n != 1 {
		t.Fatalf("receipt errors %v; want 1", n)
	}
}

// TestEventsKeepAliveAndLimit: an idle stream gets keep-alive comments; a stream beyond
// MaxStreams is refused with 503, and one slot freed lets the next in.
func TestEventsKeepAliveAndLimit(t *testing.T) {
	t.Parallel()
	f := newReceiptFixture(t, func(c *router.Config) { c.Receipts.KeepAlive, c.Receipts.MaxStreams = 20*time.Millisecond, 1 })
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	ctx := testenv.Context(t, 30*time.Second)
	s := openEvents(t, ctx, srv.URL+"/v1/events", "")
	for range 2 {
		if !s.sc.Scan() || s.sc.Text() != ": keep-alive" {
			t.Fatalf("idle stream: %q, %v; want a keep-alive comment", s.sc.Text(), s.sc.Err())
		}
		if !s.sc.Scan() || s.sc.Text() != "" {
			t.Fatalf("after the keep-alive: %q", s.sc.Text())
		}
	}
	resp, err := http.Get(srv.URL + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a second stream: %s, want 503", resp.Status)
	}
	s.close()
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		resp, err := http.Get(srv.URL + "/v1/events?from=oldest")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("after the first stream closed: %s", resp.Status)
		}
		return nil
	})
}

// TestEventsRefuseABadCursor: a cursor the store does not know is a 400 naming where it
// came from, not a stream that retries for ever.
func TestEventsRefuseABadCursor(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	cl := newCluster(t)
	r := newRouter(t, st, cl.w, nil)
	h := r.Handler()
	var e router.ErrorBody
	if code := call(t, h, "GET", "/v1/events?after=not-a-cursor", "", &e); code != 400 || e.Field != "after" {
		t.Fatalf("?after=garbage: %d %+v", code, e)
	}
	req := httptest.NewRequest("GET", "/v1/events", nil)
	req.Header.Set("Last-Event-ID", "1-0-x")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"field":"Last-Event-ID"`) {
		t.Fatalf("Last-Event-ID garbage: %d %s", rec.Code, rec.Body)
	}
}
