package integration

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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// receiptEvent is one receipt as the webhook and GET /v1/events carry it.
type receiptEvent struct {
	Cursor   string `json:"cursor"`
	ID       string `json:"id"`
	To       string `json:"to"`
	Status   string `json:"status"`
	Node     string `json:"node"`
	Attempts int    `json:"attempts"`
	Detail   string `json:"detail"`
	At       string `json:"at"`
}

// receiptHook is a webhook receiver that checks each request's signature, fails every
// failEvery-th request with a 500 (as a receiver under load does), and records the
// receipts of the requests it accepted, deduplicated by (to, id) as a consumer does.
type receiptHook struct {
	srv       *httptest.Server
	secret    string
	failEvery int
	// acked reports whether the client acknowledged the message: a delivered receipt
	// must never come before that.
	acked func(key string) bool

	mu        sync.Mutex
	requests  int
	failed    int
	badSig    int
	receipts  int                 // receipts in accepted requests, duplicates included
	statuses  map[string][]string // (to, id) -> the distinct statuses received
	early     []string            // delivered receipts that came before the PUBACK
	perClient map[string][]string // to -> ids in the order their receipts came
}

func receiptKey(to, id string) string { return to + "/" + id }

func newReceiptHook(t *testing.T, secret string, failEvery int, acked func(string) bool) *receiptHook {
	h := &receiptHook{secret: secret, failEvery: failEvery, acked: acked,
		statuses: map[string][]string{}, perClient: map[string][]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *receiptHook) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	mac := hmac.New(sha256.New, []byte(h.secret))
	mac.Write([]byte(req.Header.Get("X-Switchboard-Timestamp") + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	if !hmac.Equal([]byte(req.Header.Get("X-Switchboard-Signature")), []byte(want)) {
		h.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if h.failEvery > 0 && h.requests%h.failEvery == 0 {
		h.failed++
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}
	var b struct {
		Receipts []receiptEvent `json:"receipts"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, r := range b.Receipts {
		h.receipts++
		k := receiptKey(r.To, r.ID)
		if r.Status == "delivered" && !h.acked(k) {
			h.early = append(h.early, k)
		}
		seen := false
		for _, s := range h.statuses[k] {
			seen = seen || s == r.Status
		}
		if !seen {
			h.statuses[k] = append(h.statuses[k], r.Status)
		}
		if len(h.statuses[k]) == 1 && !seen {
			h.perClient[r.To] = append(h.perClient[r.To], r.ID)
		}
	}
}

// missing counts the keys without a receipt yet.
func (h *receiptHook) missing(keys []string) (int, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, example := 0, ""
	for _, k := range keys {
		if len(h.statuses[k]) == 0 {
			n++
			if example == "" {
				example = k
			}
		}
	}
	return n, example
}

// TestReceiptsThroughNodeAndRouterKills is issue 16's receipt test: 10,200 messages to 300
// clients through two routers, a node killed with SIGKILL and a router killed with SIGKILL
// mid-request (and started again), a webhook that fails every third request. Every
// accepted message gets exactly one terminal status (its receipt may come twice: at least
// once, deduplicated here by (to, id)); a delivered receipt never comes before the
// client's PUBACK; messages to the ten clients that never acknowledge end expired; the
// event stream and GET /v1/messages/{id} agree with the webhook.
func TestReceiptsThroughNodeAndRouterKills(t *testing.T) {
	const (
		clients     = 300
		silent      = 10 // clients that never acknowledge
		rounds      = 34
		nodeKillAt  = 10
		routerKill  = 20
		secret      = "receipts-test-secret"
		silentTTL   = "3s"
		receiptWait = 120 * time.Second
	)
	var ackMu sync.Mutex
	acked := map[string]bool{}
	hook := newReceiptHook(t, secret, 3, func(k string) bool {
		ackMu.Lock()
		defer ackMu.Unlock()
		return acked[k]
	})

	c := newCluster(t)
	nodes := []*nodeProc{c.startNode("rc1"), c.startNode("rc2"), c.startNode("rc3")}
	routerArgs := []string{"--webhook-url", hook.srv.URL, "--webhook-secret", secret, "--receipt-grace", "1s"}
	r1 := c.startRouter("rr1", routerArgs...)
	r2 := c.startRouter("rr2", routerArgs...)
	addrs := []string{nodes[0].member.MQTTAddr, nodes[1].member.MQTTAddr, nodes[2].member.MQTTAddr}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	devices := make([]*device, clients)
	for i := range devices {
		d := &device{id: fmt.Sprintf("rdev-%03d", i), addrs: addrs, next: i % 3}
		if i >= silent {
			d.onMessage = func(m testenv.Msg) {
				ackMu.Lock()
				acked[receiptKey(d.id, m.ID)] = true // before the PUBACK leaves
				ackMu.Unlock()
				_ = m.Ack()
			}
		} else {
			d.onMessage = func(testenv.Msg) {} // never acknowledges
		}
		devices[i] = d
	}
	startDevices(t, ctx, &wg, devices)

	type batchReq struct {
		Messages []msgReq `json:"messages"`
	}
	batchFor := func(round int) batchReq {
		var b batchReq
		for i, d := range devices {
			m := msgReq{ID: fmt.Sprintf("m%02d-%03d", round, i), To: d.id, Payload: fmt.Sprintf("%d/%d", i, round)}
			if i < silent {
				m.TTL = silentTTL
			}
			b.Messages = append(b.Messages, m)
		}
		return b
	}
	var accepted []string // keys
	expectExpired := map[string]bool{}
	acceptFrom := func(b batchReq, out []router.BatchItem) {
		for i, item := range out {
			if item.Code != http.StatusOK {
				continue
			}
			k := receiptKey(b.Messages[i].To, item.ID)
			accepted = append(accepted, k)
			if b.Messages[i].TTL != "" {
				expectExpired[k] = true
			}
		}
	}
	sent, refused := 0, 0
	routers := []*routerProc{r1, r2}
	for round := range rounds {
		if round == nodeKillAt {
			nodes[0].Kill()
			t.Logf("killed node %s (SIGKILL) before round %d", nodes[0].id, round)
		}
		b := batchFor(round)
		sent += len(b.Messages)
		if round == routerKill {
			// Kill r1 while a batch is in flight on it: none of that batch counts as
			// accepted (its answer never comes), though some of it may be delivered.
			done := make(chan struct{})
			go func() {
				defer close(done)
				body, _ := json.Marshal(b)
				resp, err := http.Post(r1.url+"/v1/messages/batch", "application/json", strings.NewReader(string(body)))
				if err == nil {
					var out struct {
						Results []router.BatchItem `json:"results"`
					}
					raw, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if json.Unmarshal(raw, &out) == nil && len(out.Results) == len(b.Messages) {
						acceptFrom(b, out.Results) // it answered before it died
					}
				}
			}()
			time.Sleep(20 * time.Millisecond) // let the batch get under way: a moment, not a synchronisation
			r1.Kill()
			<-done
			t.Logf("killed router rr1 (SIGKILL) during round %d", round)
			r1 = c.startRouter("rr1", routerArgs...)
			routers[0] = r1
			continue
		}
		var out struct {
			Results []router.BatchItem `json:"results"`
		}
		code := postJSON(t, routers[round%2].url+"/v1/messages/batch", b, &out)
		if code != http.StatusOK && code != http.StatusMultiStatus {
			t.Fatalf("round %d: batch answered %d", round, code)
		}
		for _, item := range out.Results {
			if item.Code != http.StatusOK {
				refused++
			}
		}
		acceptFrom(b, out.Results)
		time.Sleep(30 * time.Millisecond) // the stream's pace, not synchronisation
	}
	t.Logf("sent %d, accepted %d, refused %d", sent, len(accepted), refused)
	if len(accepted) < sent-2*clients-refused {
		t.Fatalf("only %d of %d accepted", len(accepted), sent)
	}

	testenv.Eventually(t, receiptWait, 200*time.Millisecond, func() error {
		if n, ex := hook.missing(accepted); n > 0 {
			return fmt.Errorf("%d accepted messages have no receipt yet, e.g. %s", n, ex)
		}
		return nil
	})

	hook.mu.Lock()
	conflicting, wrong, delivered, expired := 0, 0, 0, 0
	var examples []string
	for _, k := range accepted {
		st := hook.statuses[k]
		if len(st) != 1 {
			conflicting++
			examples = append(examples, fmt.Sprintf("%s: %v", k, st))
			continue
		}
		want := "delivered"
		if expectExpired[k] {
			want = "expired"
		}
		if st[0] != want {
			wrong++
			examples = append(examples, fmt.Sprintf("%s: %s, want %s", k, st[0], want))
		}
		switch st[0] {
		case "delivered":
			delivered++
		case "expired":
			expired++
		}
	}
	t.Logf("webhook: %d requests, %d failed on purpose, %d receipts (duplicates included) for %d messages; accepted: %d delivered, %d expired",
		hook.requests, hook.failed, hook.receipts, len(hook.statuses), delivered, expired)
	// In order per client: message ids sort by round, and each client's first receipts
	// came in that order.
	disordered := 0
	for to, ids := range hook.perClient {
		if !slices.IsSorted(ids) {
			disordered++
			examples = append(examples, fmt.Sprintf("%s: receipts in the order %v", to, ids))
		}
	}
	early, badSig, failed := len(hook.early), hook.badSig, hook.failed
	hook.mu.Unlock()
	if disordered > 0 {
		t.Fatalf("%d clients' receipts out of order: %v", disordered, examples[:min(len(examples), 3)])
	}
	if conflicting > 0 || wrong > 0 {
		t.Fatalf("%d messages with more than one terminal status, %d with the wrong one: %v", conflicting, wrong, examples[:min(len(examples), 10)])
	}
	if early > 0 {
		t.Fatalf("%d delivered receipts came before the client's PUBACK", early)
	}
	if badSig > 0 {
		t.Fatalf("%d webhook requests with a bad signature", badSig)
	}
	if failed == 0 {
		t.Fatal("the webhook never failed a request: the retries were not exercised")
	}

	// GET /v1/messages/{id} agrees, on either router.
	for i, k := range []string{accepted[0], accepted[len(accepted)/2], accepted[len(accepted)-1]} {
		to, id, _ := strings.Cut(k, "/")
		var st struct {
			State string `json:"state"`
			To    string `json:"to"`
		}
		if code := getJSON(t, routers[i%2].url+"/v1/messages/"+id+"?to="+to, &st); code != 200 {
			t.Fatalf("GET message %s: %d", k, code)
		}
		hook.mu.Lock()
		want := hook.statuses[k][0]
		hook.mu.Unlock()
		if st.State != want || st.To != to {
			t.Fatalf("GET message %s: %+v, want state %s", k, st, want)
		}
	}

	// The event stream from the oldest holds a receipt for every accepted message.
	need := map[string]bool{}
	for _, k := range accepted {
		need[k] = true
	}
	sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
	defer scancel()
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, r2.url+"/v1/events?from=oldest", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /v1/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	lastID := ""
	for len(need) > 0 && sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "id: "); ok {
			lastID = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			var ev receiptEvent
			if err := json.Unmarshal([]byte(v), &ev); err != nil {
				t.Fatalf("event %q: %v", v, err)
			}
			if ev.Cursor != lastID {
				t.Fatalf("event %+v under id %q", ev, lastID)
			}
			delete(need, receiptKey(ev.To, ev.ID))
		}
	}
	if len(need) > 0 {
		t.Fatalf("the event stream lacks %d accepted messages (%v)", len(need), sc.Err())
	}
}
