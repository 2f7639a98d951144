package etcdcoord_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/etcdcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

const faultTTL = suiteTTL

// TestLeaseLossFencesThenReRegisters cuts one client off from a healthy server for longer
// than its lease TTL, once refused (connections closed: the client learns at once) and once
// blackholed (nothing passes and nothing closes: gRPC's own pings would take 15s to notice).
// The registration is suspended within a third of the TTL and a keepalive interval, fences
// itself strictly before the server expires the lease (as a second client, whose link is not
// cut, sees the entry go), and once the link returns it comes back under a new lease and a
// new epoch.
func TestLeaseLossFencesThenReRegisters(t *testing.T) {
	for _, mode := range []struct {
		name string
		cut  func(*testenv.Proxy)
	}{
		{"refused", (*testenv.Proxy).Cut},
		{"blackholed", (*testenv.Proxy).Blackhole},
	} {
		t.Run(mode.name, func(t *testing.T) { testLeaseLoss(t, mode.name, mode.cut) })
	}
}

func testLeaseLoss(t *testing.T, mode string, cutLink func(*testenv.Proxy)) {
	ctx := testenv.Context(t, 45*time.Second)
	prefix := freshPrefix()
	node, p := openProxied(t, prefix, faultTTL)
	watcher := openAt(t, prefix, faultTTL)
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
	reg, st0 := coordtest.RegisterSeen(ctx, t, node, watch, "node-1")
	obs := observeKey(t, prefix+"/nodes/node-1")
	select {
	case <-obs.Present:
	case <-ctx.Done():
		t.Fatal("the observer never saw the member's key")
	}
	// A keepalive has been answered since the entry was created: the fence is timed by a
	// keepalive, not by the grant.
	registered := time.Now()
	testenv.Eventually(t, faultTTL, 10*time.Millisecond, func() error {
		acks := etcdcoord.LeaseAcks(node)
		if len(acks) != 1 || !acks[0].After(registered) {
			return fmt.Errorf("lease acks %v, want one after %v", acks, registered)
		}
		return nil
	})
	if st, _ := reg.Status(); st.State != coord.Registered || st.Epoch != st0.Epoch {
		t.Fatalf("before the cut: %+v, want registered at epoch %d (a machine too busy for TTL %v?)", st, st0.Epoch, faultTTL)
	}

	cutLink(p)
	cut := time.Now()
	susp := coordtest.WaitStatus(t, reg, faultTTL, "suspended", func(s coord.Status) bool { return s.State != coord.Registered })
	if susp.State != coord.Suspended || susp.Epoch != st0.Epoch || !susp.Live() {
		t.Fatalf("suspended status %+v, want live with epoch %d", susp, st0.Epoch)
	}
	fenced := coordtest.WaitStatus(t, reg, 2*faultTTL, "fenced while cut off", func(s coord.Status) bool { return s.State == coord.Fenced })
	within(t, obs.Gone, 3*faultTTL, "the server did not expire the lease within 3 TTLs")
	obs.Stop()
	coordtest.WaitMembers(t, watch, 3*faultTTL, "entry deleted by lease expiry", func(ms []coord.Member) bool { return len(ms) == 0 })
	if st, _ := reg.Status(); st.State != coord.Fenced {
		t.Fatalf("status %v while still cut off, want fenced", st.State)
	}
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	t.Logf("MEASURED etcd %s: lease TTL %v; suspended %dms, fenced %dms after the cut; the server "+
		"deleted the entry between %dms and %dms after the cut (watch fired at %dms); fenced at least %dms before the deletion",
		mode, faultTTL, ms(susp.Since.Sub(cut)), ms(fenced.Since.Sub(cut)),
		ms(obs.LastPresent.Sub(cut)), ms(obs.GoneAt.Sub(cut)), ms(obs.WatchAt.Sub(cut)),
		ms(obs.LastPresent.Sub(fenced.Since)))
	// Suspended within TTL/3 of the first unanswered keepalive; fenced before a linearizable
	// read last found the entry.
	coordtest.CheckFence(t, faultTTL, cut, susp, fenced, obs)
	// Fenced by the rule: the last answered keepalive was sent before the cut, so the fence
	// comes at most FenceAfter(TTL) after it.
	if d := fenced.Since.Sub(cut); d > coord.FenceAfter(faultTTL)+coordtest.Late {
		t.Errorf("fenced %v after the cut, want at most FenceAfter(TTL) = %v", d, coord.FenceAfter(faultTTL))
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

// within fails the test with failure unless ch is closed within d.
func within(t *testing.T, ch <-chan struct{}, d time.Duration, failure string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatal(failure)
	}
}

// observeKey follows key from a client of its own on the shared server: a linearizable read
// every 10ms, and a watch for the deletion.
func observeKey(t *testing.T, key string) *coordtest.Observation {
	t.Helper()
	cli := client(t) // closed after the observation's own cleanup
	read := func(ctx context.Context) (bool, error) {
		resp, err := cli.Get(ctx, key)
		return err == nil && len(resp.Kvs) > 0, err
	}
	return coordtest.Observe(t, read, func(ctx context.Context) <-chan struct{} {
		deleted := make(chan struct{})
		w := cli.Watch(ctx, key, clientv3.WithFilterPut())
		go func() { // ends with ctx, which closes the watch
			for wr := range w {
				if len(wr.Events) > 0 {
					close(deleted)
					break
				}
			}
			for range w {
			}
		}()
		return deleted
	})
}

// TestLeaderCutOffLosesLeadership cuts the leader off: its Done closes well within the TTL,
// the other candidate is elected once the leader's lease expires, and the old leader's
// fenced write is refused after the link returns.
func TestLeaderCutOffLosesLeadership(t *testing.T) {
	ctx := testenv.Context(t, 30*time.Second)
	prefix := freshPrefix()
	a, p := openProxied(t, prefix, faultTTL)
	b := openAt(t, prefix, faultTTL)
	la, err := a.Campaign(ctx, "monitor", "mon-a")
	if err != nil {
		t.Fatal(err)
	}
	bch := coordtest.CampaignAsync(ctx, b, "monitor", "mon-b")

	p.Cut()
	cut := time.Now()
	within(t, la.Done(), faultTTL, "cut-off leader still leads after a TTL")
	t.Logf("leadership given up %v after the cut", time.Since(cut).Round(time.Millisecond))
	select {
	case r := <-bch:
		if r.Err != nil {
			t.Fatal(r.Err)
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
	ctx := testenv.Context(t, 30*time.Second)
	prefix := freshPrefix()
	node, p := openProxied(t, prefix, ttl)
	watcher := openAt(t, prefix, ttl)
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

// TestResignAfterALostLeadershipKeepsToItsContext: a cut-off leader's leadership ends and
// its lease is revoked in the background, which cannot get through and waits up to a TTL.
// The role's Resign that follows must keep to its own context, not wait behind that revoke.
func TestResignAfterALostLeadershipKeepsToItsContext(t *testing.T) {
	ctx := testenv.Context(t, 30*time.Second)
	a, p := openProxied(t, freshPrefix(), faultTTL)
	la, err := a.Campaign(ctx, "monitor", "mon-a")
	if err != nil {
		t.Fatal(err)
	}
	p.Cut()
	within(t, la.Done(), faultTTL, "cut-off leader still leads after a TTL")
	// The lease leaves the coordinator's set as its revoke begins: the background one.
	testenv.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(etcdcoord.LeaseAcks(a)); n > 0 {
			return fmt.Errorf("%d leases held: the lost lease's revoke has not started", n)
		}
		return nil
	})
	const wait = 200 * time.Millisecond
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start := time.Now()
	err = la.Resign(rctx)
	if took := time.Since(start); took > faultTTL/2 {
		t.Fatalf("Resign with a %v context returned after %v (%v): it waited for the background revoke", wait, took.Round(time.Millisecond), err)
	}
	t.Logf("Resign on a cut link: %v", err)
}
