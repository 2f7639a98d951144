package watcher_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/watcher"
)

// The watcher and the reaper run goroutines of their own: check none is left behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The watcher and the reaper need only the coordinator's interface: they are tested on an
// in-memory one. The ZooKeeper and etcd specifics (re-armed watches, re-listing after a
// reconnect) are the backends' own suites'.

// clusters are the in-memory clusters by namespace: every openCoord with the same root is
// another process's client of the same cluster.
var clusters = struct {
	sync.Mutex
	m map[string]*memcoord.Cluster
}{m: map[string]*memcoord.Cluster{}}

// freshRoot is a namespace no other test uses.
func freshRoot() string { return "/watcher-test-" + coordtest.Instance() }

// openCoord opens a client (its own session) of the cluster named root.
func openCoord(t *testing.T, root string) *memcoord.Coordinator {
	t.Helper()
	clusters.Lock()
	cl, ok := clusters.m[root]
	if !ok {
		cl = memcoord.NewCluster()
		clusters.m[root] = cl
		advanceEpochs(t, cl, 1000)
	}
	clusters.Unlock()
	return testenv.OpenMemCoord(t, cl)
}

// advanceEpochs moves a fresh cluster's revision counter on by n (each campaign takes a
// revision), so its epochs are, like a real backend's transaction ids, far above the small
// made-up "older" epochs the reaper tests record.
func advanceEpochs(t *testing.T, cl *memcoord.Cluster, n int) {
	t.Helper()
	c := cl.Open(memcoord.Config{Logger: testenv.Logger(t)})
	defer c.Close()
	ctx := testenv.Context(t, 10*time.Second)
	for range n {
		l, err := c.Campaign(ctx, "warm-up", "x")
		if err != nil {
			t.Fatalf("campaign: %v", err)
		}
		if err := l.Resign(ctx); err != nil {
			t.Fatalf("resign: %v", err)
		}
	}
}

func startWatcher(t *testing.T, c coord.Coordinator) *watcher.Watcher {
	t.Helper()
	w, err := watcher.Start(testenv.Context(t, 10*time.Second), c, testenv.Logger(t))
	if err != nil {
		t.Fatalf("watcher.Start: %v", err)
	}
	t.Cleanup(w.Close)
	return w
}

// register registers a member with id and returns it with the epoch it got.
func register(t *testing.T, c coord.Coordinator, id string) (coord.Member, coord.Registration) {
	t.Helper()
	m := coordtest.NewMember(id)
	reg, err := c.Register(testenv.Context(t, 10*time.Second), m)
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = reg.Deregister(ctx)
	})
	st, _ := reg.Status()
	if st.State != coord.Registered || st.Epoch == 0 {
		t.Fatalf("register %s: status %+v", id, st)
	}
	m.Epoch = st.Epoch
	return m, reg
}

func deregister(t *testing.T, reg coord.Registration) {
	t.Helper()
	if err := reg.Deregister(testenv.Context(t, 10*time.Second)); err != nil {
		t.Fatalf("deregister: %v", err)
	}
}

// next reads the subscription's next event, failing after d.
func next(t *testing.T, sub *watcher.Subscription, d time.Duration) watcher.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ev, ok := sub.Next(ctx)
	if !ok {
		t.Fatalf("no event within %v", d)
	}
	return ev
}

// expect reads the next event and checks its kind, member id and epoch.
func expect(t *testing.T, sub *watcher.Subscription, kind watcher.Kind, id string, epoch int64) watcher.Event {
	t.Helper()
	ev := next(t, sub, 10*time.Second)
	if ev.Kind != kind || ev.Member.ID != id || ev.Member.Epoch != epoch {
		t.Fatalf("event %s %s@%#x, want %s %s@%#x", ev.Kind, ev.Member.ID, ev.Member.Epoch, kind, id, epoch)
	}
	return ev
}

// expectNone checks that nothing is queued on sub right now.
func expectNone(t *testing.T, sub *watcher.Subscription) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ev, ok := sub.Next(ctx); ok {
		t.Fatalf("unexpected event %s %s@%#x", ev.Kind, ev.Member.ID, ev.Member.Epoch)
	}
}

func ids(ms []coord.Member) []string { return coordtest.IDs(ms) }

// TestStartReturnsCurrentSet: members registered before Start are in the set Start returns
// with, each with the epoch of its registration.
func TestStartReturnsCurrentSet(t *testing.T) {
	root := freshRoot()
	a := openCoord(t, root)
	mb, _ := register(t, a, "node-b")
	ma, _ := register(t, a, "node-a")

	w := startWatcher(t, openCoord(t, root))
	got := w.Members()
	if len(got) != 2 || got[0] != ma || got[1] != mb {
		t.Fatalf("Members() right after Start = %+v, want [%+v %+v] (sorted by id)", got, ma, mb)
	}
	if m, ok := w.Get("node-b"); !ok || m != mb {
		t.Fatalf("Get(node-b) = %+v, %v", m, ok)
	}
	if _, ok := w.Get("node-c"); ok {
		t.Fatal("Get(node-c) found a member never registered")
	}

	// An empty namespace starts empty, without waiting for a change.
	empty := startWatcher(t, openCoord(t, freshRoot()))
	if ms := empty.Members(); len(ms) != 0 {
		t.Fatalf("empty namespace: Members() = %v", ids(ms))
	}
}

// TestJoinLeaveInOrder: every join and leave reaches a subscription in the order it
// happened, also for a reader that reads only at the end.
func TestJoinLeaveInOrder(t *testing.T) {
	root := freshRoot()
	a := openCoord(t, root)
	w := startWatcher(t, openCoord(t, root))
	sub := w.Subscribe()
	defer sub.Close()
	late := w.Subscribe() // read only after everything happened
	defer late.Close()

	changed := w.Changed()
	m1, r1 := register(t, a, "n1")
	expect(t, sub, watcher.Join, "n1", m1.Epoch)
	select {
	case <-changed:
	default:
		t.Fatal("Changed() channel not closed after a join")
	}
	m2, r2 := register(t, a, "n2")
	expect(t, sub, watcher.Join, "n2", m2.Epoch)
	deregister(t, r1)
	expect(t, sub, watcher.Leave, "n1", m1.Epoch)
	m3, _ := register(t, a, "n0")
	expect(t, sub, watcher.Join, "n0", m3.Epoch)
	deregister(t, r2)
	ev := expect(t, sub, watcher.Leave, "n2", m2.Epoch)
	if ev.Member != m2 {
		t.Fatalf("leave carries %+v, want the member's data %+v", ev.Member, m2)
	}
	expectNone(t, sub)

	want := []struct {
		kind  watcher.Kind
		id    string
		epoch int64
	}{
		{watcher.Join, "n1", m1.Epoch}, {watcher.Join, "n2", m2.Epoch}, {watcher.Leave, "n1", m1.Epoch},
		{watcher.Join, "n0", m3.Epoch}, {watcher.Leave, "n2", m2.Epoch},
	}
	for _, w := range want {
		expect(t, late, w.kind, w.id, w.epoch)
	}
	expectNone(t, late)
	if got := ids(w.Members()); len(got) != 1 || got[0] != "n0" {
		t.Fatalf("Members() = %v, want [n0]", got)
	}
}

// TestReRegistrationIsLeaveThenJoin: a member that deregisters and registers again under
// the same id comes back under a new epoch; subscribers see the old epoch leave and the
// new one join, and Live answers true only for the current epoch.
func TestReRegistrationIsLeaveThenJoin(t *testing.T) {
	root := freshRoot()
	a := openCoord(t, root)
	w := startWatcher(t, openCoord(t, root))
	sub := w.Subscribe()
	defer sub.Close()

	old, reg := register(t, a, "node-x")
	expect(t, sub, watcher.Join, "node-x", old.Epoch)
	if _, live := w.Live("node-x", old.Epoch); !live {
		t.Fatal("Live(node-x, its epoch) = false after the join")
	}

	deregister(t, reg)
	cur, _ := register(t, a, "node-x")
	if cur.Epoch == old.Epoch {
		t.Fatalf("re-registration kept epoch %#x", old.Epoch)
	}
	// Whether or not the watcher saw the empty set in between, the old epoch leaves first.
	expect(t, sub, watcher.Leave, "node-x", old.Epoch)
	expect(t, sub, watcher.Join, "node-x", cur.Epoch)
	expectNone(t, sub)

	if m, live := w.Live("node-x", cur.Epoch); !live || m.Instance != cur.Instance {
		t.Fatalf("Live(node-x, new epoch) = %+v, %v; want the new registration", m, live)
	}
	if _, live := w.Live("node-x", old.Epoch); live {
		t.Fatal("Live(node-x, old epoch) = true after re-registration")
	}
	if _, live := w.Live("node-x", 0); live {
		t.Fatal("Live(node-x, 0) = true")
	}
	if _, live := w.Live("node-y", cur.Epoch); live {
		t.Fatal("Live of an unknown id = true")
	}
}

// TestCloseClosesSubscriptions: Close ends a blocked Next and every later one; closing a
// subscription on its own ends only that one.
func TestCloseClosesSubscriptions(t *testing.T) {
	root := freshRoot()
	w, err := watcher.Start(testenv.Context(t, 10*time.Second), openCoord(t, root), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	closedAlone := w.Subscribe()
	sub := w.Subscribe()
	closedAlone.Close()
	if _, ok := closedAlone.Next(testenv.Context(t, 5*time.Second)); ok {
		t.Fatal("Next on a closed subscription returned an event")
	}

	// A Next blocked with a long deadline must return as soon as the watcher closes.
	result := make(chan bool, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, ok := sub.Next(ctx)
		result <- ok
	}()
	w.Close()
	select {
	case ok := <-result:
		if ok {
			t.Fatal("blocked Next returned an event at Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked Next did not return after Close")
	}
	if _, ok := sub.Next(testenv.Context(t, 5*time.Second)); ok {
		t.Fatal("Next after Close returned an event")
	}
	w.Close() // idempotent
	sub.Close()
}

// TestStartFailsOnClosedCoordinator: a watcher cannot start on a closed coordinator, and
// says why.
func TestStartFailsOnClosedCoordinator(t *testing.T) {
	c := openCoord(t, freshRoot())
	c.Close()
	w, err := watcher.Start(testenv.Context(t, 10*time.Second), c, testenv.Logger(t))
	if err == nil {
		w.Close()
		t.Fatal("Start on a closed coordinator succeeded")
	}
}
