package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
)

// fakeStore is a store for unit tests of the router's own concurrency: every client is
// offline, Append records payloads in call order, and it counts calls in progress per
// client and in total to catch overlapping calls. hold, if set, runs inside each Lookup
// and Append while the call is counted.
type fakeStore struct {
	hold func(ctx context.Context, op, client string) error

	mu        sync.Mutex
	inside    map[string]int
	maxInside map[string]int
	total     int
	maxTotal  int
	appended  map[string][]string
}

var _ store.Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{inside: map[string]int{}, maxInside: map[string]int{}, appended: map[string][]string{}}
}

func (f *fakeStore) enter(client string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inside[client]++
	f.maxInside[client] = max(f.maxInside[client], f.inside[client])
	f.total++
	f.maxTotal = max(f.maxTotal, f.total)
}

func (f *fakeStore) leave(client string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inside[client]--
	f.total--
}

func (f *fakeStore) Lookup(ctx context.Context, client string) (store.Presence, int, error) {
	f.enter(client)
	defer f.leave(client)
	if f.hold != nil {
		if err := f.hold(ctx, "lookup", client); err != nil {
			return store.Presence{}, 0, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return store.Presence{}, len(f.appended[client]), nil
}

func (f *fakeStore) Append(ctx context.Context, m store.Message, _ int) (store.AppendResult, error) {
	f.enter(m.To)
	defer f.leave(m.To)
	if f.hold != nil {
		if err := f.hold(ctx, "append", m.To); err != nil {
			return store.AppendResult{}, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.appended[m.To] = append(f.appended[m.To], string(m.Payload))
	return store.AppendResult{Depth: len(f.appended[m.To])}, nil
}

func (f *fakeStore) stats(client string) (maxInside, maxTotal int, appended []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxInside[client], f.maxTotal, append([]string(nil), f.appended[client]...)
}

func (f *fakeStore) Connect(context.Context, store.Presence) (store.Presence, error) {
	return store.Presence{}, nil
}
func (f *fakeStore) Reassert(context.Context, string, string, int64) error      { return nil }
func (f *fakeStore) Disconnect(context.Context, string, string) (bool, error)   { return false, nil }
func (f *fakeStore) ClearNode(context.Context, string, int64) (int, error)      { return 0, nil }
func (f *fakeStore) Peek(context.Context, string, int) ([]store.Message, error) { return nil, nil }
func (f *fakeStore) Ack(context.Context, string, string, []string) (int, error) { return 0, nil }
func (f *fakeStore) Depth(context.Context, string) (int, error)                 { return 0, nil }
func (f *fakeStore) Ping(context.Context) error                                 { return nil }
func (f *fakeStore) Close() error                                               { return nil }

// storeLatency makes each fake store call take a little real time, as a network round
// trip does, so that unserialised calls would overlap. It is latency, not synchronisation.
func storeLatency(ctx context.Context, _, _ string) error {
	select {
	case <-time.After(200 * time.Microsecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sendConcurrently sends perG messages from each of g goroutines, goroutine i to
// clientOf(i), and returns the first error.
func sendConcurrently(r *router.Router, g, perG int, clientOf func(int) string) error {
	var wg sync.WaitGroup
	errs := make(chan error, g*perG)
	for i := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perG {
				m := router.Message{To: clientOf(i), Topic: "t", Payload: fmt.Appendf(nil, "%d-%d", i, j), QoS: 1, TTL: time.Hour}
				if _, err := r.Send(context.Background(), m); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// TestLanesSerialiseOneClient: concurrent Sends to one client never have store calls in
// flight at the same time. The same load spread over distinct clients does overlap, which
// shows the fake would have caught an overlap.
func TestLanesSerialiseOneClient(t *testing.T) {
	cl := newCluster(t)

	spread := newFakeStore()
	spread.hold = storeLatency
	if err := sendConcurrently(newRouter(t, spread, cl.w, nil), 8, 25, func(i int) string { return fmt.Sprintf("c%d", i) }); err != nil {
		t.Fatal(err)
	}
	if _, maxTotal, _ := spread.stats(""); maxTotal < 2 {
		t.Fatalf("sends to 8 distinct clients never overlapped (max %d in flight): the check below would prove nothing", maxTotal)
	}

	one := newFakeStore()
	one.hold = storeLatency
	if err := sendConcurrently(newRouter(t, one, cl.w, nil), 8, 25, func(int) string { return "same" }); err != nil {
		t.Fatal(err)
	}
	maxInside, _, appended := one.stats("same")
	if maxInside != 1 {
		t.Fatalf("up to %d store calls for one client were in flight at once; want 1", maxInside)
	}
	if len(appended) != 8*25 {
		t.Fatalf("%d messages stored, want %d", len(appended), 8*25)
	}
}

// TestLanesDoNotBlockOtherClients: while one client's Send is stuck in the store, a Send to
// another client goes through, and the stuck client's next Send waits for the first.
func TestLanesDoNotBlockOtherClients(t *testing.T) {
	cl := newCluster(t)
	f := newFakeStore()
	stuck := make(chan struct{})
	entered := make(chan string, 16)
	f.hold = func(ctx context.Context, op, client string) error {
		if op == "lookup" {
			entered <- client
		}
		if client == "slow" {
			select {
			case <-stuck:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	r := newRouter(t, f, cl.w, func(c *router.Config) { c.StoreTimeout = 30 * time.Second })
	send := func(to, payload string) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := r.Send(context.Background(), router.Message{To: to, Topic: "t", Payload: []byte(payload), QoS: 1, TTL: time.Hour})
			done <- err
		}()
		return done
	}
	awaitEntered := func(want string) {
		t.Helper()
		select {
		case got := <-entered:
			if got != want {
				t.Fatalf("store entered for %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no store call for %q", want)
		}
	}
	first := send("slow", "1")
	awaitEntered("slow")
	second := send("slow", "2")
	fast := send("fast", "x")
	awaitEntered("fast")
	if err := waitErr(fast, 10*time.Second); err != nil {
		t.Fatalf("send to another client while one is stuck: %v", err)
	}
	select {
	case err := <-second:
		t.Fatalf("second send to the stuck client finished (%v) before the first", err)
	case got := <-entered:
		t.Fatalf("store entered for %q while the first send to slow is in flight", got)
	default:
	}
	close(stuck)
	if err := waitErr(first, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	awaitEntered("slow")
	if err := waitErr(second, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, appended := f.stats("slow"); len(appended) != 2 || appended[0] != "1" || appended[1] != "2" {
		t.Fatalf("slow's messages stored as %v, want [1 2]", appended)
	}
}

func waitErr(ch <-chan error, d time.Duration) error {
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		return errors.New("timed out")
	}
}

// TestBatchParallelAcrossClients: the batch endpoint routes a batch's clients in parallel:
// every client's first store call waits until all clients have one in flight, which only
// happens if they run at once. Each client's messages still reach the store one at a time,
// in batch order.
func TestBatchParallelAcrossClients(t *testing.T) {
	cl := newCluster(t)
	const nClients, perClient = 6, 5
	f := newFakeStore()
	var (
		mu      sync.Mutex
		arrived = map[string]bool{}
		all     = make(chan struct{})
	)
	f.hold = func(ctx context.Context, op, client string) error {
		mu.Lock()
		if !arrived[client] {
			arrived[client] = true
			if len(arrived) == nClients {
				close(all)
			}
		}
		mu.Unlock()
		select {
		case <-all:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("only some clients' sends were in flight together: %w", ctx.Err())
		}
	}
	r := newRouter(t, f, cl.w, func(c *router.Config) { c.StoreTimeout = 5 * time.Second })
	var reqs []router.Request
	for j := range perClient {
		for i := range nClients {
			p := fmt.Sprint(j)
			reqs = append(reqs, router.Request{To: fmt.Sprintf("p%d", i), Payload: &p})
		}
	}
	body, _ := json.Marshal(router.BatchRequest{Messages: reqs})
	var out struct {
		Results []router.BatchItem `json:"results"`
	}
	if code := call(t, r.Handler(), "POST", "/v1/messages/batch", string(body), &out); code != 200 {
		t.Fatalf("batch status %d: %+v", code, out.Results)
	}
	for i, it := range out.Results {
		if it.Error != "" || it.Code != 200 || it.Status != router.Queued {
			t.Fatalf("item %d (%s): %+v", i, reqs[i].To, it)
		}
	}
	for i := range nClients {
		c := fmt.Sprintf("p%d", i)
		maxInside, _, appended := f.stats(c)
		if maxInside != 1 {
			t.Fatalf("%s: %d store calls in flight at once, want 1", c, maxInside)
		}
		want := []string{"0", "1", "2", "3", "4"}
		if fmt.Sprint(appended) != fmt.Sprint(want) {
			t.Fatalf("%s stored %v, want %v (batch order)", c, appended, want)
		}
	}
}
