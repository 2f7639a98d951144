package watcher_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/watcher"
)

type clearCall struct {
	node  string
	epoch int64
}

// fakeClearer records the reaper's ClearNode calls. It stands in for the store, which is the
// reaper's dependency, not the unit under test.
type fakeClearer struct {
	mu       sync.Mutex
	calls    []clearCall
	recorded []store.NodeEpoch // what RecordedEpochs lists, in order; ClearNode forgets
	listed   int               // RecordedEpochs calls
	signal   chan struct{}     // nudged after every call
}

var _ watcher.PresenceClearer = (*fakeClearer)(nil)

func newFakeClearer() *fakeClearer { return &fakeClearer{signal: make(chan struct{}, 1)} }

func (f *fakeClearer) ClearNode(_ context.Context, node string, epoch int64) (int, error) {
	f.mu.Lock()
	f.calls = append(f.calls, clearCall{node, epoch})
	f.recorded = slices.DeleteFunc(f.recorded, func(ne store.NodeEpoch) bool { return ne == store.NodeEpoch{Node: node, Epoch: epoch} })
	f.mu.Unlock()
	select {
	case f.signal <- struct{}{}:
	default:
	}
	return 1, nil
}

// RecordedEpochs pages through f.recorded, which the test keeps in order.
func (f *fakeClearer) RecordedEpochs(_ context.Context, after store.NodeEpoch, max int) ([]store.NodeEpoch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listed++
	i := 0
	if after != (store.NodeEpoch{}) {
		i = slices.Index(f.recorded, after) + 1
	}
	return slices.Clone(f.recorded[i:min(len(f.recorded), i+max)]), nil
}

func (f *fakeClearer) snapshot() []clearCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]clearCall(nil), f.calls...)
}

func (f *fakeClearer) count(c clearCall) int {
	n := 0
	for _, got := range f.snapshot() {
		if got == c {
			n++
		}
	}
	return n
}

// waitCall reports whether ClearNode(c) was called within d.
func (f *fakeClearer) waitCall(c clearCall, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		if f.count(c) > 0 {
			return true
		}
		select {
		case <-f.signal:
		case <-timer.C:
			return f.count(c) > 0
		}
	}
}

// reaperCandidate is one process running the reaper: its own coordinator session, its own
// watcher and its own store.
type reaperCandidate struct {
	name  string
	c     *memcoord.Coordinator
	w     *watcher.Watcher
	clear *fakeClearer
}

func startReaper(t *testing.T, root, name string) *reaperCandidate {
	t.Helper()
	rc := &reaperCandidate{name: name, c: openCoord(t, root), clear: newFakeClearer()}
	rc.w = startWatcher(t, rc.c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watcher.RunReaper(ctx, rc.c, rc.w, rc.clear, name, testenv.Logger(t).With("candidate", name))
	}()
	// Cleanups run last-in first-out: the reaper stops before its watcher and session.
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("RunReaper %s did not return after its context ended", name)
		}
	})
	return rc
}

// waitLeader waits until the reaper election is led by one of cands and returns it.
func waitLeader(t *testing.T, obs coord.Coordinator, cands ...*reaperCandidate) *reaperCandidate {
	t.Helper()
	var lead *reaperCandidate
	testenv.Eventually(t, 15*time.Second, 50*time.Millisecond, func() error {
		name, err := obs.Leader(testenv.Context(t, 5*time.Second), "reaper")
		if err != nil {
			return err
		}
		for _, c := range cands {
			if c.name == name {
				lead = c
				return nil
			}
		}
		return fmt.Errorf("reaper election led by %q, want one of the candidates", name)
	})
	return lead
}

// leave registers a short-lived member on mc, waits until every watcher in ws has seen it
// join, deregisters it and returns the call the reaper should make for it. (A member that
// joins and leaves between two listings of the live set is never seen by a watcher: the
// watch delivers states, not every transition.)
func leave(t *testing.T, mc coord.Coordinator, id string, ws ...*watcher.Watcher) clearCall {
	t.Helper()
	m, reg := register(t, mc, id)
	for _, w := range ws {
		waitLive(t, w, m)
	}
	deregister(t, reg)
	return clearCall{id, m.Epoch}
}

// waitLive waits, on the watcher's change notifications, until m is live in w.
func waitLive(t *testing.T, w *watcher.Watcher, m coord.Member) {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		changed := w.Changed()
		if _, live := w.Live(m.ID, m.Epoch); live {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("%s@%#x not in the watcher's live set within 10s", m.ID, m.Epoch)
		}
	}
}

// armed waits until lead's reaper is subscribed to the watcher: a candidate leads (its
// election znode exists) a moment before it subscribes, and a leave in that moment is not
// its to clear. Probe members leave until one is cleared.
func armed(t *testing.T, mc coord.Coordinator, lead *reaperCandidate) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if lead.clear.waitCall(leave(t, mc, fmt.Sprintf("probe-%s-%d", lead.name, i), lead.w), 2*time.Second) {
			return
		}
	}
	t.Fatalf("reaper %s never cleared a probe member's presence", lead.name)
}

// TestReaperLeaderClearsOnceAndFailsOver: of two reaper candidates only the leader clears;
// a member that leaves is cleared exactly once, for the epoch that left; when the leader's
// session ends (Close) the other candidate takes over and clears the next leave.
func TestReaperLeaderClearsOnceAndFailsOver(t *testing.T) {
	root := freshRoot()
	mc := openCoord(t, root) // the members' own session
	x, regX := register(t, mc, "node-x")
	y, regY := register(t, mc, "node-y")
	z, regZ := register(t, mc, "node-z")

	a := startReaper(t, root, "reaper-a")
	b := startReaper(t, root, "reaper-b")
	lead := waitLeader(t, mc, a, b)
	other := a
	if lead == a {
		other = b
	}
	armed(t, mc, lead)
	otherCalls := len(other.clear.snapshot())
	if otherCalls != 0 {
		t.Fatalf("the candidate that does not lead cleared %v", other.clear.snapshot())
	}

	// A member leaves: the leader clears it, for its epoch.
	deregister(t, regX)
	wantX := clearCall{"node-x", x.Epoch}
	if !lead.clear.waitCall(wantX, 10*time.Second) {
		t.Fatalf("leader %s did not clear node-x@%#x; calls %v", lead.name, x.Epoch, lead.clear.snapshot())
	}

	// A member re-registers: the epoch that left is cleared, never the one that is live.
	deregister(t, regZ)
	z2, _ := register(t, mc, "node-z")
	wantZ := clearCall{"node-z", z.Epoch}
	if !lead.clear.waitCall(wantZ, 10*time.Second) {
		t.Fatalf("leader %s did not clear node-z@%#x; calls %v", lead.name, z.Epoch, lead.clear.snapshot())
	}

	// The reaper works through events in order, so once a later leave is cleared any
	// duplicate for node-x would have been recorded too.
	sentinel := leave(t, mc, "sentinel-1", lead.w, other.w)
	if !lead.clear.waitCall(sentinel, 10*time.Second) {
		t.Fatalf("leader %s did not clear the sentinel", lead.name)
	}
	if n := lead.clear.count(wantX); n != 1 {
		t.Fatalf("node-x@%#x cleared %d times, want exactly once; calls %v", x.Epoch, n, lead.clear.snapshot())
	}
	if n := lead.clear.count(wantZ); n != 1 {
		t.Fatalf("node-z@%#x cleared %d times, want exactly once", z.Epoch, n)
	}
	if n := lead.clear.count(clearCall{"node-z", z2.Epoch}); n != 0 {
		t.Fatalf("the live epoch %#x of node-z was cleared", z2.Epoch)
	}
	// The other candidate's watcher saw the same leaves; it must not have acted on them.
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if _, ok := other.w.Get("sentinel-1"); ok {
			return errors.New("the other candidate's watcher has not seen the sentinel leave yet")
		}
		return nil
	})
	if calls := other.clear.snapshot(); len(calls) != 0 {
		t.Fatalf("%s cleared %v without leading", other.name, calls)
	}

	// The leader's process loses its session: the other candidate takes over.
	leadCalls := len(lead.clear.snapshot())
	if err := lead.c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := waitLeader(t, mc, a, b); got != other {
		t.Fatalf("after %s closed, %s leads", lead.name, got.name)
	}
	armed(t, mc, other)
	deregister(t, regY)
	wantY := clearCall{"node-y", y.Epoch}
	if !other.clear.waitCall(wantY, 10*time.Second) {
		t.Fatalf("new leader %s did not clear node-y@%#x; calls %v", other.name, y.Epoch, other.clear.snapshot())
	}
	sentinel = leave(t, mc, "sentinel-2", other.w)
	if !other.clear.waitCall(sentinel, 10*time.Second) {
		t.Fatalf("new leader %s did not clear the second sentinel", other.name)
	}
	if n := other.clear.count(wantY); n != 1 {
		t.Fatalf("node-y cleared %d times by the new leader, want once", n)
	}
	if n := len(lead.clear.snapshot()); n != leadCalls {
		t.Fatalf("the closed candidate %s went on clearing: %v", lead.name, lead.clear.snapshot()[leadCalls:])
	}
}

// flakyClearer fails its first calls, as a store that is briefly down would.
type flakyClearer struct {
	*fakeClearer
	mu       sync.Mutex
	failures int
}

func (f *flakyClearer) ClearNode(ctx context.Context, node string, epoch int64) (int, error) {
	f.mu.Lock()
	fail := f.failures > 0
	if fail {
		f.failures--
	}
	f.mu.Unlock()
	if fail {
		return 0, errors.New("store unavailable (injected)")
	}
	return f.fakeClearer.ClearNode(ctx, node, epoch)
}

// TestReaperRetriesFailedClear: a ClearNode that fails is retried, so a brief store outage
// does not leave a dead node's presence behind.
func TestReaperRetriesFailedClear(t *testing.T) {
	root := freshRoot()
	mc := openCoord(t, root)
	c := openCoord(t, root)
	w := startWatcher(t, c)
	fc := &flakyClearer{fakeClearer: newFakeClearer()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watcher.RunReaper(ctx, c, w, fc, "reaper-only", testenv.Logger(t))
	}()
	t.Cleanup(func() { cancel(); <-done })
	rc := &reaperCandidate{name: "reaper-only", c: c, w: w, clear: fc.fakeClearer}
	waitLeader(t, mc, rc)
	// Arm with the clearer working, then make the next call fail once.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		if fc.waitCall(leave(t, mc, fmt.Sprintf("probe-%d", i), w), 2*time.Second) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reaper never cleared a probe")
		}
	}
	fc.mu.Lock()
	fc.failures = 1
	fc.mu.Unlock()
	want := leave(t, mc, "node-f", w)
	if !fc.waitCall(want, 10*time.Second) {
		t.Fatalf("a failed ClearNode for node-f was not retried; calls %v", fc.snapshot())
	}
}

// TestReaperSweepsWhatNoLeaderSaw: presence recorded under (node, epoch) pairs that left
// the live set while no reaper led is cleared when a leader starts (a node gone
// altogether, even one whose epoch is newer than any live one, and a live node's older
// epochs), and nothing else is: not a live pair, not a pair newer than its node's listed
// epoch (a listing behind the store). The dead pairs fill more than one page.
func TestReaperSweepsWhatNoLeaderSaw(t *testing.T) {
	root := freshRoot()
	mc := openCoord(t, root)
	a, _ := register(t, mc, "node-a")
	b, _ := register(t, mc, "node-b")
	c := openCoord(t, root)
	w := startWatcher(t, c)
	waitLive(t, w, a)
	waitLive(t, w, b)

	var want []clearCall
	recorded := []store.NodeEpoch{{Node: "node-a", Epoch: a.Epoch}} // live: kept
	// node-b's epochs before the live one, and 150 nodes that are gone altogether, each
	// with an epoch older than the live ones.
	for i := range 3 {
		ne := store.NodeEpoch{Node: "node-b", Epoch: int64(i + 1)}
		recorded = append(recorded, ne)
		want = append(want, clearCall{ne.Node, ne.Epoch})
	}
	recorded = append(recorded, store.NodeEpoch{Node: "node-b", Epoch: b.Epoch})
	for i := range 150 {
		ne := store.NodeEpoch{Node: fmt.Sprintf("node-dead-%03d", i), Epoch: int64(i + 1)}
		recorded = append(recorded, ne)
		want = append(want, clearCall{ne.Node, ne.Epoch})
	}
	gone := store.NodeEpoch{Node: "node-gone", Epoch: max(a.Epoch, b.Epoch) + 1000}
	recorded = append(recorded, gone)
	want = append(want, clearCall{gone.Node, gone.Epoch})
	ahead := store.NodeEpoch{Node: "node-b", Epoch: b.Epoch + 1000}
	recorded = append(recorded, ahead)
	slices.SortFunc(recorded, func(x, y store.NodeEpoch) int {
		if x.Node != y.Node {
			return strings.Compare(x.Node, y.Node)
		}
		return cmp.Compare(x.Epoch, y.Epoch)
	})
	fc := newFakeClearer()
	fc.recorded = recorded

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watcher.RunReaper(ctx, c, w, fc, "reaper-sweep", testenv.Logger(t))
	}()
	t.Cleanup(func() { cancel(); <-done })
	for _, wc := range want {
		if !fc.waitCall(wc, 15*time.Second) {
			t.Fatalf("the new leader did not clear %v; calls %v", wc, fc.snapshot())
		}
	}
	// The sweep is done once the last page was read; then nothing else is cleared.
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		if fc.listed < 2 {
			return fmt.Errorf("%d pages read", fc.listed)
		}
		return nil
	})
	if calls := fc.snapshot(); len(calls) != len(want) {
		t.Fatalf("%d pairs cleared, want %d: %v", len(calls), len(want), calls)
	}
	for _, keep := range []store.NodeEpoch{{Node: "node-a", Epoch: a.Epoch}, {Node: "node-b", Epoch: b.Epoch}, ahead} {
		if n := fc.count(clearCall{keep.Node, keep.Epoch}); n != 0 {
			t.Fatalf("%v cleared; it is live, or newer than its node's listed epoch", keep)
		}
	}
}

// TestStartedReaperStopsAtClose: a reaper started with StartReaper (with a live set of its
// own) leads, and Close stops it
// for good: it resigns, Done is closed, and a node that leaves afterwards is not cleared by
// it (its owner may close the store right after Close).
func TestStartedReaperStopsAtClose(t *testing.T) {
	root := freshRoot()
	mc := openCoord(t, root)
	c := openCoord(t, root)
	w := startWatcher(t, c)
	fc := newFakeClearer()
	r, err := watcher.StartReaper(testenv.Context(t, 10*time.Second), watcher.ReaperConfig{Candidate: "reaper-owned"},
		watcher.ReaperDeps{Coord: c, Store: fc, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		name, err := mc.Leader(testenv.Context(t, 5*time.Second), "reaper")
		if err != nil || name != "reaper-owned" {
			return fmt.Errorf("leader %q, %v", name, err)
		}
		return nil
	})
	a, reg := register(t, mc, "node-a")
	waitLive(t, w, a)
	r.Close()
	select {
	case <-r.Done():
	default:
		t.Fatal("Done is open after Close")
	}
	r.Close() // idempotent
	if name, err := mc.Leader(testenv.Context(t, 5*time.Second), "reaper"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("after Close the reaper election is led by %q (%v); want no leader", name, err)
	}
	deregister(t, reg)
	time.Sleep(100 * time.Millisecond)
	if calls := fc.snapshot(); len(calls) != 0 {
		t.Fatalf("a closed reaper cleared %v", calls)
	}
}
