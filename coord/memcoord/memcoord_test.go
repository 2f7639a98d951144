package memcoord_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// open returns an opener of clients on one fresh cluster, closed when the test ends.
func open(t *testing.T) func() *memcoord.Coordinator {
	cl := memcoord.NewCluster()
	return func() *memcoord.Coordinator {
		c := cl.Open(memcoord.Config{SessionTimeout: time.Second, Logger: testenv.Logger(t)})
		t.Cleanup(func() { c.Close() })
		return c
	}
}

func TestBehaviour(t *testing.T) {
	coordtest.Run(t, func(t *testing.T) func() coord.Coordinator {
		o := open(t)
		return func() coord.Coordinator { return o() }
	})
}

// TestExpiredSessionFencesThenReRegisters: the one fault the in-memory backend has. The
// registration is fenced at once and comes back under a new epoch; the leadership ends.
func TestExpiredSessionFencesThenReRegisters(t *testing.T) {
	ctx := testenv.Context(t, 10*time.Second)
	o := open(t)
	c, watcher := o(), o()
	reg, err := c.Register(ctx, coordtest.NewMember("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	st0, _ := reg.Status()
	lead, err := c.Campaign(ctx, "monitor", "mon-1")
	if err != nil {
		t.Fatal(err)
	}
	watch, err := watcher.WatchMembers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	coordtest.WaitMembers(t, watch, time.Second, "node-1 registered", func(ms []coord.Member) bool { return len(ms) == 1 })

	c.ExpireSession()
	select {
	case <-lead.Done():
	case <-time.After(time.Second):
		t.Fatal("leadership not lost with its session")
	}
	st := coordtest.WaitStatus(t, reg, time.Second, "registered again", func(s coord.Status) bool {
		return s.State == coord.Registered && s.Epoch != st0.Epoch
	})
	coordtest.WaitMembers(t, watch, time.Second, "node-1 under its new epoch", func(ms []coord.Member) bool {
		return len(ms) == 1 && ms[0].Epoch == st.Epoch
	})
}

// TestCandidateLostWhileWaitingStandsAgain: a waiting candidate whose session expires is
// lost with it and campaigns again on the new session, so it is elected once the leader
// resigns; an abandoned campaign leaves no candidate behind.
func TestCandidateLostWhileWaitingStandsAgain(t *testing.T) {
	ctx := testenv.Context(t, 10*time.Second)
	o := open(t)
	a, b, c := o(), o(), o()
	la, err := a.Campaign(ctx, "monitor", "mon-a")
	if err != nil {
		t.Fatal(err)
	}
	bch := coordtest.CampaignAsync(ctx, b, "monitor", "mon-b")
	cctx, cancel := context.WithCancel(ctx)
	cch := coordtest.CampaignAsync(cctx, c, "monitor", "mon-c")
	time.Sleep(50 * time.Millisecond) // nothing announces "waiting"; let both stand
	b.ExpireSession()
	cancel()
	if r := <-cch; !errors.Is(r.Err, context.Canceled) {
		t.Fatalf("abandoned campaign: %+v, want context.Canceled", r)
	}
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-bch
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if got, err := a.Leader(ctx, "monitor"); err != nil || got != "mon-b" {
		t.Fatalf("Leader = %q, %v; want mon-b", got, err)
	}
	if err := r.L.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Leader(ctx, "monitor"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("Leader once all resigned = %q, %v; want ErrNotFound (no candidate left behind)", got, err)
	}
}
