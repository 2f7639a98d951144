package lease_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/lease"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

var quiet = slog.New(slog.DiscardHandler)

// notices is an in-memory notice list per node, with a switch that makes takes fail.
type notices struct {
	mu       sync.Mutex
	lists    map[string][]store.Notice
	failing  bool
	takes    int
	notifies int
	seq      uint64
}

func newNotices() *notices { return &notices{lists: map[string][]store.Notice{}} }

func (n *notices) TakeNotices(_ context.Context, node string, max int) ([]store.Notice, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.takes++
	if n.failing {
		return nil, errors.New("store unreachable")
	}
	l := n.lists[node]
	return append([]store.Notice(nil), l[:min(max, len(l))]...), nil
}

func (n *notices) DoneNotices(_ context.Context, node string, upTo uint64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.failing {
		return errors.New("store unreachable")
	}
	l := n.lists[node]
	for len(l) > 0 && l[0].Seq <= upTo {
		l = l[1:]
	}
	n.lists[node] = l
	return nil
}

func (n *notices) Notify(_ context.Context, node string, ns ...store.Notice) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notifies++
	for _, x := range ns {
		n.seq++
		x.Seq = n.seq
		n.lists[node] = append(n.lists[node], x)
	}
	return nil
}

func (n *notices) setFailing(f bool) {
	n.mu.Lock()
	n.failing = f
	n.mu.Unlock()
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHolderAppliesNoticesBeforeTheLeaseIsValid: the lease is valid only once a round of
// takes has succeeded, and the notices of that round were applied first; every notice,
// however many, is taken in one round.
func TestHolderAppliesNoticesBeforeTheLeaseIsValid(t *testing.T) {
	st := newNotices()
	for i := range 25 {
		_ = st.Notify(context.Background(), "n1", store.Notice{Kind: store.NoticeMailbox, Client: string(rune('a' + i))})
	}
	var mu sync.Mutex
	var applied []store.Notice
	var hp atomic.Pointer[lease.Holder]
	validWhileApplying := false
	h, err := lease.Start(lease.Config{Node: "n1", Duration: time.Second, Interval: 50 * time.Millisecond, Batch: 10}, st,
		func(ns []store.Notice) {
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, ns...)
			if h := hp.Load(); h != nil {
				if ok, _ := h.Check(); ok {
					validWhileApplying = true
				}
			}
		}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	hp.Store(h)
	defer h.Close()
	waitFor(t, 2*time.Second, func() bool { ok, _ := h.Check(); return ok }, "lease valid")
	mu.Lock()
	defer mu.Unlock()
	if len(applied) != 25 {
		t.Fatalf("applied %d notices before the lease became valid, want all 25", len(applied))
	}
	if validWhileApplying {
		t.Fatal("the lease was valid while the first round's notices were being applied")
	}
}

// TestHolderLapsesAndRecovers: when takes fail, the lease runs out Duration after the last
// successful round began (not later), and a renewal after the lapse closes the channel a
// waiting sender holds.
func TestHolderLapsesAndRecovers(t *testing.T) {
	st := newNotices()
	const d = 300 * time.Millisecond
	h, err := lease.Start(lease.Config{Node: "n1", Duration: d, Interval: 20 * time.Millisecond}, st, func([]store.Notice) {}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	waitFor(t, 2*time.Second, func() bool { ok, _ := h.Check(); return ok }, "lease valid")
	st.setFailing(true)
	failedAt := time.Now()
	waitFor(t, 2*time.Second, func() bool { ok, _ := h.Check(); return !ok }, "lease lapsed")
	if lapse := time.Since(failedAt); lapse > d+100*time.Millisecond {
		t.Fatalf("the lease lapsed %v after takes began failing, want at most %v (+ scheduling)", lapse, d)
	}
	ok, renewed := h.Check()
	if ok {
		t.Fatal("valid again already")
	}
	st.setFailing(false)
	select {
	case <-renewed:
	case <-time.After(2 * time.Second):
		t.Fatal("the renewal after the lapse did not close the channel")
	}
	if ok, _ := h.Check(); !ok {
		t.Fatal("not valid after the renewal")
	}
}

func TestHolderConfigErrorsNameTheField(t *testing.T) {
	for _, c := range []lease.Config{
		{Duration: time.Second, Interval: time.Millisecond},
		{Node: "n", Duration: 0, Interval: time.Millisecond},
		{Node: "n", Duration: time.Second, Interval: 600 * time.Millisecond},
	} {
		if err := c.Validate(); err == nil {
			t.Fatalf("%+v accepted", c)
		}
	}
}

// members is a settable live set.
type members struct {
	mu      sync.Mutex
	set     map[string]coord.Member
	changed chan struct{}
}

func newMembers(ms ...coord.Member) *members {
	m := &members{set: map[string]coord.Member{}, changed: make(chan struct{})}
	for _, x := range ms {
		m.set[x.ID] = x
	}
	return m
}

func (m *members) Lookup(id string) (coord.Member, bool, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var maxEpoch int64
	for _, x := range m.set {
		maxEpoch = max(maxEpoch, x.Epoch)
	}
	x, ok := m.set[id]
	return x, ok, maxEpoch
}

func (m *members) Members() []coord.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]coord.Member, 0, len(m.set))
	for _, x := range m.set {
		out = append(out, x)
	}
	return out
}

func (m *members) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *members) remove(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.set, id)
	close(m.changed)
	m.changed = make(chan struct{})
}

// mailboxes answers Append with a fixed presence and records notices.
type mailboxes struct {
	*notices
	presence store.Presence
	appended int
}

func (m *mailboxes) Append(_ context.Context, _ int, msgs []store.Message) ([]store.AppendResult, error) {
	m.appended += len(msgs)
	res := make([]store.AppendResult, len(msgs))
	for i := range res {
		p := m.presence
		p.Client = msgs[i].To
		res[i] = store.AppendResult{Seq: uint64(i + 1), Depth: i + 1, Presence: p}
	}
	return res, nil
}

// node is a wire server standing in for a node that answers Drain and Kick.
type node struct {
	mu     sync.Mutex
	drains []string
	kicks  []string
}

func (n *node) Deliver(_ context.Context, d wire.Deliver, reply func(int, wire.Result)) {
	for i := range d.Msgs {
		reply(i, wire.Result{Status: wire.StatusNotHere})
	}
}

func (n *node) Kick(_ context.Context, k wire.Kick) wire.Result {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.kicks = append(n.kicks, k.Session)
	return wire.Result{Status: wire.StatusDelivered}
}

func (n *node) Drain(_ context.Context, d wire.Drain) wire.Result {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.drains = append(n.drains, d.Clients...)
	return wire.Result{Status: wire.StatusDelivered}
}

func serveNode(t *testing.T, n *node) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := wire.NewServer(n, wire.ServerOptions{})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

func msgs(to ...string) []store.Message {
	var out []store.Message
	for i, c := range to {
		out = append(out, store.Message{ID: string(rune('a' + i)), To: c, Topic: "inbox/" + c, TTL: time.Hour})
	}
	return out
}

// TestQueueTellsAReachableNodeDirectly: the node named by the presence hears of the mailbox
// over the wire before Queue returns, once per client; nothing is stored as a notice and
// nobody waits.
func TestQueueTellsAReachableNodeDirectly(t *testing.T) {
	fn := &node{}
	pool := wire.NewPool(wire.DialOptions{})
	defer pool.Close()
	m := coord.Member{ID: "n1", Epoch: 7, InternalAddr: serveNode(t, fn), LeaseMillis: 5000}
	mb := &mailboxes{notices: newNotices(), presence: store.Presence{Node: "n1", Epoch: 7, Session: "s"}}
	tl := lease.NewTeller(lease.TellerConfig{MailboxLimit: 10}, mb, newMembers(m), pool, quiet)
	start := time.Now()
	if _, err := tl.Queue(context.Background(), "", msgs("c1", "c1", "c2")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Queue took %v with the node reachable", took)
	}
	fn.mu.Lock()
	defer fn.mu.Unlock()
	if len(fn.drains) != 2 || mb.notifies != 0 {
		t.Fatalf("node drained %v, %d notices stored; want c1 and c2 told directly, no notice", fn.drains, mb.notifies)
	}
}

// TestQueueWaitsOutTheLeaseOfAnUnreachableNode: with the node unreachable, the notice is
// stored and Queue returns only after the node's lease (plus a margin) — or as soon as the
// node's epoch leaves the live set.
func TestQueueWaitsOutTheLeaseOfAnUnreachableNode(t *testing.T) {
	pool := wire.NewPool(wire.DialOptions{DialTimeout: 100 * time.Millisecond})
	defer pool.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close() // nothing listens there now
	const leaseMS = 400
	m := coord.Member{ID: "n1", Epoch: 7, InternalAddr: dead, LeaseMillis: leaseMS}
	mb := &mailboxes{notices: newNotices(), presence: store.Presence{Node: "n1", Epoch: 7, Session: "s"}}
	live := newMembers(m, coord.Member{ID: "n2", Epoch: 9})
	tl := lease.NewTeller(lease.TellerConfig{MailboxLimit: 10, DirectTimeout: 100 * time.Millisecond}, mb, live, pool, quiet)
	start := time.Now()
	if _, err := tl.Queue(context.Background(), "", msgs("c1")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < leaseMS*time.Millisecond {
		t.Fatalf("Queue returned after %v, before the node's %dms lease ran out", took, leaseMS)
	}
	if mb.notifies != 1 || len(mb.lists["n1"]) != 1 || mb.lists["n1"][0].Client != "c1" {
		t.Fatalf("notices %v", mb.lists)
	}

	// The same, but the node leaves the live set meanwhile (another member, registered
	// after it, is still there): no need to wait any more.
	done := make(chan time.Duration, 1)
	start = time.Now()
	go func() {
		_, _ = tl.Queue(context.Background(), "", msgs("c2"))
		done <- time.Since(start)
	}()
	time.Sleep(50 * time.Millisecond) // Queue is waiting by now; this is the fault's moment, not synchronisation
	live.remove("n1")
	if took := <-done; took >= leaseMS*time.Millisecond {
		t.Fatalf("Queue waited %v although the node left the live set", took)
	}
}

// TestTellSkipsWhatNeedsNoTelling: the caller's own session, and an epoch that has left the
// live set, are not waited for; an epoch newer than the live set has shown is told through
// the store, with the wait. A revocation for an epoch that left is stored all the same (its
// node acts on it if it comes back under a new epoch), a mailbox notice is not (the node
// reads every mailbox again then).
func TestTellSkipsWhatNeedsNoTelling(t *testing.T) {
	pool := wire.NewPool(wire.DialOptions{DialTimeout: 100 * time.Millisecond})
	defer pool.Close()
	m := coord.Member{ID: "n1", Epoch: 10, InternalAddr: "127.0.0.1:1", LeaseMillis: 200}
	other := coord.Member{ID: "n2", Epoch: 20, InternalAddr: "127.0.0.1:1", LeaseMillis: 200}
	st := newNotices()
	tl := lease.NewTeller(lease.TellerConfig{DirectTimeout: 50 * time.Millisecond}, &mailboxes{notices: st}, newMembers(m, other), pool, quiet)
	revoke := []store.Notice{{Kind: store.NoticeRevoke, Client: "c", Session: "s"}}
	mailbox := []store.Notice{{Kind: store.NoticeMailbox, Client: "c"}}
	ctx := context.Background()
	quick := func(what string, node string, epoch int64, ns []store.Notice, wantNotifies int) {
		t.Helper()
		start := time.Now()
		err := tl.Tell(ctx, node, epoch, ns)
		if took := time.Since(start); err != nil || st.notifies != wantNotifies || took >= 200*time.Millisecond {
			t.Fatalf("%s: %v, %d notices stored (want %d), took %v", what, err, st.notifies, wantNotifies, took)
		}
	}
	// n1 at epoch 9: n1 is live at 10 now, so 9 left.
	quick("mailbox notice, older epoch of a live node", "n1", 9, mailbox, 0)
	quick("revocation, older epoch of a live node", "n1", 9, revoke, 1)
	// n3 at epoch 15: not in the set, and the set was read after epoch 20 was created.
	quick("mailbox notice, epoch that left", "n3", 15, mailbox, 1)
	quick("revocation, epoch that left", "n3", 15, revoke, 2)
	// n4 at epoch 25: newer than anything seen: told through the store, with the wait.
	start := time.Now()
	if err := tl.Tell(ctx, "n4", 25, revoke); err != nil || st.notifies != 3 {
		t.Fatalf("epoch not seen yet: %v, %d notices", err, st.notifies)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("epoch not seen yet: Tell returned after %v, within the members' 200ms lease", took)
	}
	// Queue does not tell the caller's own session.
	mb := &mailboxes{notices: newNotices(), presence: store.Presence{Node: "n1", Epoch: 10, Session: "mine"}}
	tl2 := lease.NewTeller(lease.TellerConfig{MailboxLimit: 10}, mb, newMembers(m), pool, quiet)
	if _, err := tl2.Queue(ctx, "mine", msgs("c")); err != nil || mb.notifies != 0 {
		t.Fatalf("own session: %v, %d notices", err, mb.notifies)
	}
}

// TestRenewalsResumeWhatStoppedBeforeTheLoopBegan: work that stopped on a lapsed lease
// before the first renewal is resumed even when Renewals begins only after that renewal
// (as a node's sender that a client started in the node's first moments, before the
// goroutine that wakes senders ran), and again after every later lapse.
func TestRenewalsResumeWhatStoppedBeforeTheLoopBegan(t *testing.T) {
	st := newNotices()
	st.setFailing(true)
	h, err := lease.Start(lease.Config{Node: "n1", Duration: 300 * time.Millisecond, Interval: 20 * time.Millisecond}, st, func([]store.Notice) {}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if ok, _ := h.Check(); ok {
		t.Fatal("valid before any round succeeded")
	}
	st.setFailing(false)
	waitFor(t, 2*time.Second, func() bool { ok, _ := h.Check(); return ok }, "lease valid")

	calls := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Renewals(ctx, func() { calls <- struct{}{} }) }()
	called := func(what string) {
		t.Helper()
		select {
		case <-calls:
		case <-time.After(2 * time.Second):
			t.Fatalf("fn not called %s", what)
		}
	}
	called("for the renewal that came before the loop began")

	st.setFailing(true)
	waitFor(t, 2*time.Second, func() bool { ok, _ := h.Check(); return !ok }, "lease lapsed")
	for len(calls) > 0 {
		<-calls // an earlier lapse's, had the machine stalled: this one's is awaited next
	}
	st.setFailing(false)
	called("after the next lapse")
	cancel()
	<-done
}
