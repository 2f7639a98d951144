// Package coordtest is the behaviour suite every coord.Coordinator implementation must pass.
// Each implementation's tests call Run with a way to open clients on a real backend.
package coordtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// Opener returns a function that opens a new client (its own session) on a namespace that
// is fresh for this test and shared by every client it opens. Clients are closed by the
// opener's cleanup.
type Opener func(t *testing.T) func() coord.Coordinator

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	t.Run("RegisterAndWatch", func(t *testing.T) { testRegisterAndWatch(t, open(t)) })
	t.Run("DeregisterLeavesAtOnce", func(t *testing.T) { testDeregister(t, open(t)) })
	t.Run("CloseEndsMembership", func(t *testing.T) { testClose(t, open(t)) })
	t.Run("DuplicateRefused", func(t *testing.T) { testDuplicate(t, open(t)) })
	t.Run("QuarantineWithdrawRelease", func(t *testing.T) { testQuarantine(t, open(t)) })
	t.Run("RegisterWhileQuarantined", func(t *testing.T) { testRegisterWhileMarked(t, open(t)) })
	t.Run("Election", func(t *testing.T) { testElection(t, open(t)) })
	t.Run("FencedWriteAfterResign", func(t *testing.T) { testFence(t, open(t)) })
	t.Run("AbandonedCampaignLeavesNoCandidate", func(t *testing.T) { testAbandonedCampaign(t, open(t)) })
	t.Run("InvalidIDs", func(t *testing.T) { testInvalid(t, open(t)) })
}

// Instance returns a random instance id.
func Instance() string { return rand.Text() }

// NewMember returns a member with plausible data.
func NewMember(id string) coord.Member {
	return coord.Member{
		ID: id, MQTTAddr: "127.0.0.1:1883", InternalAddr: "127.0.0.1:7000", AdminAddr: "127.0.0.1:9100",
		Version: "test", StartedAt: time.Now().UTC().Truncate(time.Millisecond), Instance: Instance(),
	}
}

// watched opens two clients on a test of at most 30s: a to act, b to watch the members.
func watched(t *testing.T, newClient func() coord.Coordinator) (ctx context.Context, a, b coord.Coordinator, watch <-chan []coord.Member) {
	t.Helper()
	ctx = testenv.Context(t, 30*time.Second)
	a, b = newClient(), newClient()
	watch, err := b.WatchMembers(ctx)
	Must(t, err)
	return ctx, a, b, watch
}

// WaitMembers reads ch until a set satisfies ok, failing after d.
func WaitMembers(t *testing.T, ch <-chan []coord.Member, d time.Duration, what string, ok func([]coord.Member) bool) []coord.Member {
	t.Helper()
	timeout := time.After(d)
	var last []coord.Member
	for {
		select {
		case set, open := <-ch:
			if !open {
				t.Fatalf("watch closed while waiting for %s (last %v)", what, IDs(last))
			}
			last = set
			if ok(set) {
				return set
			}
		case <-timeout:
			t.Fatalf("not within %v: %s (last set %v)", d, what, IDs(last))
		}
	}
}

// WaitStatus waits until the registration's status satisfies ok.
func WaitStatus(t *testing.T, r coord.Registration, d time.Duration, what string, ok func(coord.Status) bool) coord.Status {
	t.Helper()
	timeout := time.After(d)
	for {
		st, changed := r.Status()
		if ok(st) {
			return st
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("not within %v: %s (status %+v)", d, what, st)
		}
	}
}

// IDs lists member ids.
func IDs(ms []coord.Member) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

// Find returns the member with id.
func Find(ms []coord.Member, id string) (coord.Member, bool) {
	if i := slices.IndexFunc(ms, func(m coord.Member) bool { return m.ID == id }); i >= 0 {
		return ms[i], true
	}
	return coord.Member{}, false
}

func has(id string) func([]coord.Member) bool {
	return func(ms []coord.Member) bool { _, ok := Find(ms, id); return ok }
}

func hasNot(id string) func([]coord.Member) bool {
	return func(ms []coord.Member) bool { _, ok := Find(ms, id); return !ok }
}

func testRegisterAndWatch(t *testing.T, newClient func() coord.Coordinator) {
	ctx, a, b, watch := watched(t, newClient)
	WaitMembers(t, watch, 5*time.Second, "empty initial set", func(ms []coord.Member) bool { return len(ms) == 0 })

	m := NewMember("node-1")
	before := time.Now()
	reg, err := a.Register(ctx, m)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	st, _ := reg.Status()
	if st.State != coord.Registered || st.Epoch == 0 {
		t.Fatalf("status after Register = %+v, want registered with an epoch", st)
	}
	if st.Since.Before(before) || st.Since.After(time.Now()) {
		t.Fatalf("status after Register = %+v, want Since within the call (from %v)", st, before)
	}
	set := WaitMembers(t, watch, 5*time.Second, "node-1 appears", has("node-1"))
	got, _ := Find(set, "node-1")
	want := m
	want.Epoch = st.Epoch
	if !got.StartedAt.Equal(want.StartedAt) {
		t.Fatalf("started_at %v, want %v", got.StartedAt, want.StartedAt)
	}
	got.StartedAt = want.StartedAt
	if got != want {
		t.Fatalf("watched member = %+v, want %+v", got, want)
	}
	list, err := b.Members(ctx)
	Must(t, err)
	if l, ok := Find(list, "node-1"); !ok || l.Epoch != st.Epoch {
		t.Fatalf("Members() = %+v, want node-1 with epoch %d", list, st.Epoch)
	}

	// A second member joins; the watch delivers both.
	_, err = a.Register(ctx, NewMember("node-2"))
	Must(t, err)
	WaitMembers(t, watch, 5*time.Second, "both members", func(ms []coord.Member) bool {
		return slices.Equal(IDs(ms), []string{"node-1", "node-2"})
	})
}

func testDeregister(t *testing.T, newClient func() coord.Coordinator) {
	ctx, a, _, watch := watched(t, newClient)
	reg, _ := RegisterSeen(ctx, t, a, watch, "node-d")
	if err := reg.Deregister(ctx); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	// "At once": well inside any session timeout.
	WaitMembers(t, watch, 2*time.Second, "node-d leaves at once", hasNot("node-d"))
	if st, _ := reg.Status(); st.State != coord.Closed {
		t.Fatalf("status after Deregister = %v, want closed", st.State)
	}
	if err := reg.Deregister(ctx); err != nil {
		t.Fatalf("second deregister: %v", err)
	}
}

func testClose(t *testing.T, newClient func() coord.Coordinator) {
	ctx, a, _, watch := watched(t, newClient)
	RegisterSeen(ctx, t, a, watch, "node-c")
	Must(t, a.Close())
	WaitMembers(t, watch, 2*time.Second, "node-c leaves when its client closes", hasNot("node-c"))
	if err := a.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func testDuplicate(t *testing.T, newClient func() coord.Coordinator) {
	ctx := testenv.Context(t, 60*time.Second)
	a, b := newClient(), newClient()
	_, err := a.Register(ctx, NewMember("node-x"))
	Must(t, err)
	_, err = b.Register(ctx, NewMember("node-x"))
	if !errors.Is(err, coord.ErrDuplicate) {
		t.Fatalf("second live registration of node-x: err = %v, want ErrDuplicate", err)
	}
}

func testQuarantine(t *testing.T, newClient func() coord.Coordinator) {
	ctx, a, b, watch := watched(t, newClient)
	qwatch, err := b.WatchQuarantines(ctx)
	Must(t, err)
	reg, st0 := RegisterSeen(ctx, t, a, watch, "node-q")

	q := coord.Quarantine{Node: "node-q", Reason: "test", At: time.Now().UTC().Truncate(time.Second), By: "suite",
		Evidence: []byte(`{"probe":"mqtt","ok":false}`)}
	if err := b.SetQuarantine(ctx, q, nil); err != nil {
		t.Fatalf("set quarantine: %v", err)
	}
	st := WaitStatus(t, reg, 5*time.Second, "mark seen by the registration", func(s coord.Status) bool { return s.Mark != nil })
	if st.State != coord.Registered || st.Mark.Reason != "test" || string(st.Mark.Evidence) != `{"probe":"mqtt","ok":false}` {
		t.Fatalf("status with mark = %+v (mark %+v)", st, st.Mark)
	}
	for {
		qs := <-qwatch
		if len(qs) == 1 && qs[0].Node == "node-q" && qs[0].By == "suite" {
			break
		}
	}
	if err := reg.Withdraw(ctx); err != nil {
		t.Fatalf("withdraw: %v", err)
	}
	WaitMembers(t, watch, 5*time.Second, "withdrawn node-q leaves", hasNot("node-q"))
	WaitStatus(t, reg, 5*time.Second, "quarantined", func(s coord.Status) bool { return s.State == coord.Quarantined })

	if err := b.Release(ctx, "node-q"); err != nil {
		t.Fatalf("release: %v", err)
	}
	st = WaitStatus(t, reg, 5*time.Second, "registered again after release", func(s coord.Status) bool {
		return s.State == coord.Registered && s.Mark == nil
	})
	if st.Epoch == st0.Epoch || st.Epoch == 0 {
		t.Fatalf("epoch after release = %d, want a new one (was %d)", st.Epoch, st0.Epoch)
	}
	WaitMembers(t, watch, 5*time.Second, "node-q back", has("node-q"))
	if err := b.Release(ctx, "node-q"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("release without mark: err = %v, want ErrNotFound", err)
	}
}

func testRegisterWhileMarked(t *testing.T, newClient func() coord.Coordinator) {
	ctx := testenv.Context(t, 30*time.Second)
	a, b := newClient(), newClient()
	Must(t, b.SetQuarantine(ctx, coord.Quarantine{Node: "node-m", Reason: "before start", By: "suite"}, nil))
	reg, err := a.Register(ctx, NewMember("node-m"))
	if err != nil {
		t.Fatalf("register while marked: %v", err)
	}
	st, _ := reg.Status()
	if st.State != coord.Quarantined || st.Mark == nil || st.Mark.Reason != "before start" {
		t.Fatalf("status = %+v, want quarantined with the mark", st)
	}
	ms, err := b.Members(ctx)
	Must(t, err)
	if _, ok := Find(ms, "node-m"); ok {
		t.Fatalf("quarantined node-m is in the live set %v", IDs(ms))
	}
	Must(t, b.Release(ctx, "node-m"))
	WaitStatus(t, reg, 5*time.Second, "registered after release", func(s coord.Status) bool { return s.State == coord.Registered })
}

func testElection(t *testing.T, newClient func() coord.Coordinator) {
	ctx := testenv.Context(t, 30*time.Second)
	a, b := newClient(), newClient()
	la, err := a.Campaign(ctx, "monitor", "mon-a")
	Must(t, err)
	if got, err := b.Leader(ctx, "monitor"); err != nil || got != "mon-a" {
		t.Fatalf("Leader = %q, %v; want mon-a", got, err)
	}
	bch := CampaignAsync(ctx, b, "monitor", "mon-b")
	select {
	case r := <-bch:
		t.Fatalf("second candidate elected while the first leads: %+v", r)
	case <-time.After(300 * time.Millisecond):
		// Negative check: nothing announces "not elected"; a short window shows it waits.
	}
	Must(t, la.Resign(ctx))
	select {
	case <-la.Done():
	default:
		t.Fatal("Done not closed after Resign")
	}
	r := <-bch
	Must(t, r.Err)
	if got, err := a.Leader(ctx, "monitor"); err != nil || got != "mon-b" {
		t.Fatalf("Leader after resign = %q, %v; want mon-b", got, err)
	}
	// When the leader's client closes, the next candidate takes over.
	cch := CampaignAsync(ctx, newClient(), "monitor", "mon-c")
	b.Close()
	select {
	case <-r.L.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("leadership Done not closed when its client closed")
	}
	Must(t, (<-cch).Err)
	// Another client's read may come from a server a moment behind the one that took
	// mon-c's candidacy (ZooKeeper reads are not linearizable across servers): look again
	// for a bounded while (polling a read that lags: nothing to wait on).
	testenv.Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		if got, _ := a.Leader(ctx, "monitor"); got != "mon-c" {
			return fmt.Errorf("leader after the leader's client closed = %q, want mon-c", got)
		}
		return nil
	})
}

func testFence(t *testing.T, newClient func() coord.Coordinator) {
	ctx := testenv.Context(t, 30*time.Second)
	a := newClient()
	l, err := a.Campaign(ctx, "monitor", "mon-a")
	Must(t, err)
	if err := a.SetQuarantine(ctx, coord.Quarantine{Node: "n1", Reason: "fenced ok"}, l); err != nil {
		t.Fatalf("fenced write while leading: %v", err)
	}
	Must(t, l.Resign(ctx))
	err = a.SetQuarantine(ctx, coord.Quarantine{Node: "n2", Reason: "after resign"}, l)
	if !errors.Is(err, coord.ErrNotLeader) {
		t.Fatalf("fenced write after resign: err = %v, want ErrNotLeader", err)
	}
	qs, err := a.Quarantines(ctx)
	Must(t, err)
	if len(qs) != 1 || qs[0].Node != "n1" {
		t.Fatalf("quarantines = %+v, want only n1", qs)
	}
}

// testAbandonedCampaign: campaigns whose context ends while their candidate entry is being
// made leave no entry behind, whenever the end comes (a backend may make the entry after its
// caller gave up); another candidate is then elected at once.
func testAbandonedCampaign(t *testing.T, newClient func() coord.Coordinator) {
	ctx := testenv.Context(t, 60*time.Second)
	a, b := newClient(), newClient()
	l, err := a.Campaign(ctx, "monitor", "warm") // the election exists from here
	Must(t, err)
	Must(t, l.Resign(ctx))
	won := 0
	for d := 100 * time.Microsecond; d < 5*time.Millisecond; d += 100 * time.Microsecond {
		cctx, cancel := context.WithTimeout(ctx, d)
		l, err := a.Campaign(cctx, "monitor", "abandoned")
		cancel()
		if err == nil {
			won++
			Must(t, l.Resign(ctx))
		}
	}
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := b.Campaign(bctx, "monitor", "mon-b"); err != nil {
		leader, _ := b.Leader(ctx, "monitor")
		t.Fatalf("mon-b not elected with nobody else campaigning (%d of the abandoned campaigns won and resigned): %v; Leader = %q",
			won, err, leader)
	}
}

func testInvalid(t *testing.T, newClient func() coord.Coordinator) {
	ctx := testenv.Context(t, 10*time.Second)
	a := newClient()
	for _, id := range []string{"", "a/b", "..", string(make([]byte, 65)), "node 1"} {
		if _, err := a.Register(ctx, NewMember(id)); err == nil {
			t.Errorf("Register(%q) succeeded, want an error naming the id", id)
		} else if id != "" && !containsQuoted(err.Error(), id) {
			t.Errorf("Register(%q) error %q does not name the id", id, err)
		}
	}
}

func containsQuoted(msg, id string) bool {
	q := fmt.Sprintf("%q", id)
	if len(q) > 20 {
		q = q[:20]
	}
	return strings.Contains(msg, q) || strings.Contains(msg, "characters long")
}

// Must fails the test at once if err is not nil.
func Must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Campaigned is the outcome of a campaign CampaignAsync ran.
type Campaigned struct {
	L   coord.Leadership
	Err error
}

// CampaignAsync campaigns for candidate in the named election on a goroutine of its own, which
// ends with the campaign (ctx bounds it); the channel receives the outcome.
func CampaignAsync(ctx context.Context, c coord.Campaigner, election, candidate string) <-chan Campaigned {
	ch := make(chan Campaigned, 1)
	go func() {
		l, err := c.Campaign(ctx, election, candidate)
		ch <- Campaigned{l, err}
	}()
	return ch
}
