package router_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/watcher"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// countingStore counts Lookup calls on a real store.
type countingStore struct {
	store.Store
	lookups atomic.Int64
}

func (c *countingStore) Lookup(ctx context.Context, client string) (store.Presence, int, error) {
	c.lookups.Add(1)
	return c.Store.Lookup(ctx, client)
}

// fakeNode answers deliveries for one session of one client; tests switch the session and
// the answer. It stands in for a broker node in a unit test of the router's route cache.
type fakeNode struct {
	mu       sync.Mutex
	session  string
	fail     bool
	received []string
	drains   []string // clients it was told have mail
}

func (f *fakeNode) Deliver(_ context.Context, d wire.Deliver, reply func(int, wire.Result)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, m := range d.Msgs {
		switch {
		case d.Session != f.session:
			reply(i, wire.Result{Status: wire.StatusNotHere})
		case f.fail:
			reply(i, wire.Result{Status: wire.StatusFailed})
		default:
			f.received = append(f.received, m.ID)
			reply(i, wire.Result{Status: wire.StatusDelivered})
		}
	}
}
func (f *fakeNode) Kick(_ context.Context, k wire.Kick) wire.Result {
	return wire.Result{Seq: k.Seq, Status: wire.StatusDelivered}
}
func (f *fakeNode) Drain(_ context.Context, d wire.Drain) wire.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drains = append(f.drains, d.Clients...)
	return wire.Result{Seq: d.Seq, Status: wire.StatusDelivered}
}

// TestRouteCacheSkipsTheStoreAndStaysCorrect: while a client stays where it is, messages go
// direct without a store round trip; a changed session is noticed by the node's refusal and
// costs one look-up; a delivery with an unknown outcome queues the message, and the router
// tells the client's node before it answers (the node then reads the mailbox before it
// sends anything newer).
func TestRouteCacheSkipsTheStoreAndStaysCorrect(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: openStore(t)}
	cl := newCluster(t)
	fn := &fakeNode{session: "s1"}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := wire.NewServer(fn, wire.ServerOptions{})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	m := coordtest.NewMember("n1")
	m.InternalAddr = l.Addr().String()
	reg, err := cl.c.Register(testenv.Context(t, 10*time.Second), m)
	if err != nil {
		t.Fatal(err)
	}
	status, _ := reg.Status()
	waitLive(t, cl.w, "n1", status.Epoch)
	ctx := testenv.Context(t, 30*time.Second)
	presence := func(session string) {
		if _, err := st.Connect(ctx, store.Presence{Client: "c", Node: "n1", Epoch: status.Epoch, Session: session, Since: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	presence("s1")
	r := newRouter(t, st, cl.w, nil)
	send := func() router.Result {
		t.Helper()
		res, err := r.Send(ctx, router.Message{To: "c", Topic: "inbox/c", QoS: 1, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	for range 5 {
		if res := send(); res.Status != router.Delivered {
			t.Fatalf("send: %+v", res)
		}
	}
	if n := st.lookups.Load(); n != 1 {
		t.Fatalf("%d store look-ups for 5 messages to a client that stayed put, want 1", n)
	}

	// The client reconnects (a new session): the cached route is refused by the node and the
	// router looks again.
	presence("s2")
	fn.mu.Lock()
	fn.session = "s2"
	fn.mu.Unlock()
	if res := send(); res.Status != router.Delivered {
		t.Fatalf("after the session changed: %+v", res)
	}
	if n := st.lookups.Load(); n != 2 {
		t.Fatalf("look-ups after a session change: %d, want 2", n)
	}

	// An unknown outcome queues the message, and the node hears of it before the answer.
	fn.mu.Lock()
	fn.fail = true
	fn.mu.Unlock()
	if res := send(); res.Status != router.Queued || res.Depth != 1 {
		t.Fatalf("failed delivery: %+v, want queued at depth 1", res)
	}
	fn.mu.Lock()
	drains := append([]string(nil), fn.drains...)
	fn.fail = false
	fn.mu.Unlock()
	if len(drains) != 1 || drains[0] != "c" {
		t.Fatalf("node told of mailboxes %v before the answer, want [c]", drains)
	}
}

func waitLive(t testing.TB, w *watcher.Watcher, id string, epoch int64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		changed := w.Changed()
		if _, ok := w.Live(id, epoch); ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s never live at epoch %d", id, epoch)
		}
	}
}
