package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// roundTrips counts the round trips a store makes (a command or a pipeline each) and can
// hold the first one back until released.
type roundTrips struct {
	mu      sync.Mutex
	n       int
	hold    chan struct{} // closed to release the first round trip
	held    chan struct{} // closed once the first round trip is held
	holding bool
}

func (r *roundTrips) count() int { r.mu.Lock(); defer r.mu.Unlock(); return r.n }

// release waits until waiting says want calls of kind are queued behind the held first round
// trip, lets it go, and returns how many round trips were made from then until first (the
// held call's outcome, which must be a success) and wg's calls are done.
func (r *roundTrips) release(t *testing.T, kind string, want int, waiting func() int, first <-chan error, wg *sync.WaitGroup) int {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		if w := waiting(); w != want {
			return fmt.Errorf("%d %s waiting, want %d", w, kind, want)
		}
		return nil
	})
	before := r.count()
	close(r.hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	return r.count() - before
}

func (r *roundTrips) trip() {
	r.mu.Lock()
	r.n++
	first := !r.holding && r.hold != nil
	if first {
		r.holding = true
	}
	r.mu.Unlock()
	if first {
		close(r.held)
		<-r.hold
	}
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { r.trip(); return next(ctx, cmd) }
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { r.trip(); return next(ctx, cmds) }
}

// TestConcurrentConnectsShareRoundTrips: Connects that arrive while a batch is being
// written are written together in the next one (three round trips for all of them, not
// three each), and each still returns only once its own presence is recorded, with its
// own answer (here: the presence it replaced).
func TestConcurrentConnectsShareRoundTrips(t *testing.T) {
	s := open(t, testConfig(t, shared.Redis(t).Addr))
	ctx, cancel := testContext(t, 20*time.Second)
	defer cancel()
	const n = 64
	// Each client had a presence on another node: its Connect must return that one.
	for i := range n {
		if _, err := s.Connect(ctx, storetest.NewPresence(fmt.Sprint("c", i), "old", 1)); err != nil {
			t.Fatal(err)
		}
	}
	rt := &roundTrips{hold: make(chan struct{}), held: make(chan struct{})}
	redisstore.AddHook(s, rt)

	first := make(chan error, 1)
	go func() {
		_, err := s.Connect(ctx, storetest.NewPresence("first", "n1", 2))
		first <- err
	}()
	<-rt.held // the first batch (of one) is under way and held
	var wg sync.WaitGroup
	results := make([]store.ConnectResult, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Connect(ctx, storetest.NewPresence(fmt.Sprint("c", i), "n1", 2))
		}()
	}
	trips := rt.release(t, "Connects", n, func() int { return redisstore.WaitingConnects(s) }, first, &wg)
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("connect c%d: %v", i, errs[i])
		}
		if prev := results[i].Prev; prev.Node != "old" || prev.Client != fmt.Sprint("c", i) {
			t.Fatalf("connect c%d replaced %+v, want its presence on node old", i, prev)
		}
		p, _, err := s.Lookup(ctx, fmt.Sprint("c", i))
		if err != nil || p.Node != "n1" {
			t.Fatalf("presence of c%d: %+v %v", i, p, err)
		}
	}
	// The first batch: up to three round trips (index, script, index); the second the
	// same for all 64, and two to take them out of the previous node's index.
	if trips > 3+3+2 {
		t.Fatalf("%d round trips for 1 + %d concurrent Connects, want at most %d", trips, n, 3+3+2)
	}
}

// TestConcurrentPeeksShareRoundTrips: Peeks that arrive while a batch is being read are
// read together in one pipeline, each with its own mailbox's messages.
func TestConcurrentPeeksShareRoundTrips(t *testing.T) {
	s := open(t, testConfig(t, shared.Redis(t).Addr))
	ctx, cancel := testContext(t, 20*time.Second)
	defer cancel()
	const n = 64
	var msgs []store.Message
	for i := range n {
		msgs = append(msgs, storetest.NewMessage(fmt.Sprint("c", i), fmt.Sprint("m", i)))
	}
	if _, err := s.Append(ctx, 10, msgs); err != nil {
		t.Fatal(err)
	}
	rt := &roundTrips{hold: make(chan struct{}), held: make(chan struct{})}
	redisstore.AddHook(s, rt)
	first := make(chan error, 1)
	go func() {
		_, err := s.Peek(ctx, "nobody", 0, 10)
		first <- err
	}()
	<-rt.held
	var wg sync.WaitGroup
	got := make([][]store.Message, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = s.Peek(ctx, fmt.Sprint("c", i), 0, 10)
		}()
	}
	if trips := rt.release(t, "Peeks", n, func() int { return redisstore.WaitingPeeks(s) }, first, &wg); trips > 2 {
		t.Fatalf("%d round trips for 1 + %d concurrent Peeks, want at most 2", trips, n)
	}
	for i := range n {
		if errs[i] != nil || len(got[i]) != 1 || got[i][0].ID != fmt.Sprint("m", i) {
			t.Fatalf("peek c%d: %+v %v", i, got[i], errs[i])
		}
	}
}

// TestLookupAllIsOneRoundTrip: a presence audit's look-ups of many clients take one
// round trip, each client with its own presence and depth.
func TestLookupAllIsOneRoundTrip(t *testing.T) {
	s := open(t, testConfig(t, shared.Redis(t).Addr))
	ctx, cancel := testContext(t, 20*time.Second)
	defer cancel()
	const n = 100
	clients := make([]string, n)
	want := make([]store.Presence, n)
	for i := range n {
		clients[i] = fmt.Sprint("c", i)
		if i%2 == 0 {
			want[i] = storetest.NewPresence(clients[i], "n1", 1)
			if _, err := s.Connect(ctx, want[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.Append(ctx, 10, []store.Message{storetest.NewMessage("c1", "m")}); err != nil {
		t.Fatal(err)
	}
	rt := &roundTrips{}
	redisstore.AddHook(s, rt)
	got := s.LookupAll(ctx, clients)
	if trips := rt.count(); trips != 1 {
		t.Fatalf("%d round trips to look up %d clients, want 1", trips, n)
	}
	for i, l := range got {
		if l.Err != nil || l.Presence.Session != want[i].Session || l.Presence.Online() != (i%2 == 0) {
			t.Fatalf("LookupAll of %s: %+v, want session %q", clients[i], l, want[i].Session)
		}
		if wantDepth := map[bool]int{true: 1}[i == 1]; l.Depth != wantDepth {
			t.Fatalf("LookupAll of %s: depth %d, want %d", clients[i], l.Depth, wantDepth)
		}
	}
}

// TestConcurrentDisconnectsShareRoundTrips: Disconnects that arrive while a batch is being
// written are written together, each with its own answer; a late Disconnect of a session
// that was taken over, in the same batch, clears nothing.
func TestConcurrentDisconnectsShareRoundTrips(t *testing.T) {
	s := open(t, testConfig(t, shared.Redis(t).Addr))
	ctx, cancel := testContext(t, 20*time.Second)
	defer cancel()
	const n = 64
	sessions := make([]string, n)
	for i := range n {
		p := storetest.NewPresence(fmt.Sprint("c", i), "n1", 1)
		if _, err := s.Connect(ctx, p); err != nil {
			t.Fatal(err)
		}
		sessions[i] = p.Session
	}
	// The new session on the same node: a takeover from another node would leave its batch
	// cleaning the old node's index after the answer, a round trip the hook below could
	// catch in place of the first Disconnect's.
	old := storetest.NewPresence("taken", "n1", 1)
	newer := storetest.NewPresence("taken", "n1", 1)
	for _, p := range []store.Presence{old, newer} {
		if _, err := s.Connect(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	rt := &roundTrips{hold: make(chan struct{}), held: make(chan struct{})}
	redisstore.AddHook(s, rt)
	first := make(chan error, 1)
	go func() {
		_, err := s.Disconnect(ctx, "nobody", "s")
		first <- err
	}()
	<-rt.held
	var wg sync.WaitGroup
	cleared := make([]bool, n+1)
	errs := make([]error, n+1)
	for i := range n + 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == n {
				cleared[i], errs[i] = s.Disconnect(ctx, "taken", old.Session)
				return
			}
			cleared[i], errs[i] = s.Disconnect(ctx, fmt.Sprint("c", i), sessions[i])
		}()
	}
	trips := rt.release(t, "Disconnects", n+1, func() int { return redisstore.WaitingDisconnects(s) }, first, &wg)
	for i := range n {
		if errs[i] != nil || !cleared[i] {
			t.Fatalf("disconnect c%d: %v %v, want it cleared", i, cleared[i], errs[i])
		}
		if p, _, err := s.Lookup(ctx, fmt.Sprint("c", i)); err != nil || p.Online() {
			t.Fatalf("presence of c%d after its Disconnect: %+v %v", i, p, err)
		}
	}
	if errs[n] != nil || cleared[n] {
		t.Fatalf("late disconnect of a session taken over: %v %v, want nothing cleared", cleared[n], errs[n])
	}
	if p, _, err := s.Lookup(ctx, "taken"); err != nil || p.Session != newer.Session {
		t.Fatalf("presence after a late disconnect of the session it replaced: %+v %v, want %s", p, err, newer.Session)
	}
	// The first batch: the script and the index (two); the second the same for all.
	if trips > 3+3 {
		t.Fatalf("%d round trips for 1 + %d concurrent Disconnects, want at most %d", trips, n+1, 3+3)
	}
}
