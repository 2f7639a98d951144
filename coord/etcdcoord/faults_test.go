package etcdcoord_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/etcdcoord"
)

const faultTTL = suiteTTL

// TestLeaseLossFencesThenReRegisters cuts one client off from a healthy server for longer
// than its lease TTL: the registration is suspended at once, fences itself, the server
// expires the lease (another client's watch sees the member leave), and once the link
// returns the registration comes back under a new lease and a new epoch.
func TestLeaseLossFencesThenReRegisters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	p := newProxy(t, endpoint)
	prefix := freshPrefix()
	node := open(t, etcdcoord.Config{Endpoints: []string{p.Addr()}, Prefix: prefix, SessionTTL: faultTTL, DialTimeout: 5 * time.Second})
	watcher := open(t, etcdcoord.Config{Prefix: prefix, SessionTTL: faultTTL})
	watch, err := watcher.WatchMembers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The node's own watch goes through the cut link: it must list again once the link
	// is back.
	ownWatch, err := node.WatchMembers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := node.Register(ctx, coordtest.NewMember("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	st0, _ := reg.Status()
	coordtest.WaitMembers(t, watch, 5*time.Second, "registered", func(ms []coord.Member) bool { return len(ms) == 1 })

	p.Cut()
	cut := time.Now()
	coordtest.WaitStatus(t, reg, faultTTL, "suspended", func(s coord.Status) bool { return s.State == coord.Suspended })
	if st, _ := reg.Status(); st.Epoch != st0.Epoch || !st.Live() {
		t.Fatalf("suspended status %+v, want live with epoch %d", st, st0.Epoch)
	}
	t.Logf("suspended %v after the cut", time.Since(cut).Round(time.Millisecond))
	coordtest.WaitStatus(t, reg, 2*faultTTL, "fenced while cut off", func(s coord.Status) bool { return s.State == coord.Fenced })
	fenced := time.Since(cut)
	coordtest.WaitMembers(t, watch, 3*faultTTL, "entry deleted by lease expiry", func(ms []coord.Member) bool { return len(ms) == 0 })
	t.Logf("fenced %v, entry left the live set %v after the cut (TTL %v)",
		fenced.Round(time.Millisecond), time.Since(cut).Round(time.Millisecond), faultTTL)
	if st, _ := reg.Status(); st.State != coord.Fenced {
		t.Fatalf("status %v while still cut off, want fenced", st.State)
	}

	p.Restore()
	st := coordtest.WaitStatus(t, reg, 20*time.Second, "registered again", func(s coord.Status) bool { return s.State == coord.Registered })
	if st.Epoch == st0.Epoch {
		t.Fatalf("re-registered with the fenced epoch %d", st.Epoch)
	}
	set := coordtest.WaitMembers(t, watch, 5*time.Second, "back in the live set", func(ms []coord.Member) bool { return len(ms) == 1 })
	if set[0].Epoch != st.Epoch {
		t.Fatalf("watched epoch %d, registration epoch %d", set[0].Epoch, st.Epoch)
	}
	coordtest.WaitMembers(t, ownWatch, 5*time.Second, "own watch sees the new epoch after the link returned",
		func(ms []coord.Member) bool { return len(ms) == 1 && ms[0].Epoch == st.Epoch })
}

// TestLeaderCutOffLosesLeadership cuts the leader off: its Done closes well within the TTL,
// the other candidate is elected once the leader's lease expires, and the old leader's
// fenced write is refused after the link returns.
func TestLeaderCutOffLosesLeadership(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := newProxy(t, endpoint)
	prefix := freshPrefix()
	a := open(t, etcdcoord.Config{Endpoints: []string{p.Addr()}, Prefix: prefix, SessionTTL: faultTTL, DialTimeout: 5 * time.Second})
	b := open(t, etcdcoord.Config{Prefix: prefix, SessionTTL: faultTTL})
	la, err := a.Campaign(ctx, "monitor", "mon-a")
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		l   coord.Leadership
		err error
	}
	bch := make(chan res, 1)
	go func() {
		l, err := b.Campaign(ctx, "monitor", "mon-b")
		bch <- res{l, err}
	}()

	p.Cut()
	cut := time.Now()
	select {
	case <-la.Done():
		t.Logf("leadership given up %v after the cut", time.Since(cut).Round(time.Millisecond))
	case <-time.After(faultTTL):
		t.Fatal("cut-off leader still leads after a TTL")
	}
	select {
	case r := <-bch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Logf("mon-b elected %v after the cut", time.Since(cut).Round(time.Millisecond))
	case <-time.After(5 * faultTTL):
		t.Fatal("mon-b not elected after the leader's lease expired")
	}
	if got, err := b.Leader(ctx, "monitor"); err != nil || got != "mon-b" {
		t.Fatalf("Leader = %q, %v; want mon-b", got, err)
	}
	p.Restore()
	err = a.SetQuarantine(ctx, coord.Quarantine{Node: "n1", Reason: "stale leader"}, la)
	if !errors.Is(err, coord.ErrNotLeader) {
		t.Fatalf("fenced write by the deposed leader: err = %v, want ErrNotLeader", err)
	}
	if qs, err := b.Quarantines(ctx); err != nil || len(qs) != 0 {
		t.Fatalf("quarantines = %+v, %v; want none", qs, err)
	}
}

// TestShortCutKeepsEpoch cuts the link for less than the TTL: the registration is suspended
// and comes back registered under the same epoch; the member never leaves the live set.
func TestShortCutKeepsEpoch(t *testing.T) {
	const ttl = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := newProxy(t, endpoint)
	prefix := freshPrefix()
	node := open(t, etcdcoord.Config{Endpoints: []string{p.Addr()}, Prefix: prefix, SessionTTL: ttl, DialTimeout: 5 * time.Second})
	watcher := open(t, etcdcoord.Config{Prefix: prefix, SessionTTL: ttl})
	reg, err := node.Register(ctx, coordtest.NewMember("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	st0, _ := reg.Status()
	p.Cut()
	coordtest.WaitStatus(t, reg, ttl, "suspended", func(s coord.Status) bool { return s.State == coord.Suspended })
	time.Sleep(500 * time.Millisecond) // stay cut a while: nothing announces "still suspended"
	p.Restore()
	st := coordtest.WaitStatus(t, reg, ttl, "registered again", func(s coord.Status) bool { return s.State != coord.Suspended })
	if st.State != coord.Registered || st.Epoch != st0.Epoch {
		t.Fatalf("after a short cut: %+v, want registered with epoch %d", st, st0.Epoch)
	}
	ms, err := watcher.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Epoch != st0.Epoch {
		t.Fatalf("members = %+v, want node-1 at epoch %d", ms, st0.Epoch)
	}
}
