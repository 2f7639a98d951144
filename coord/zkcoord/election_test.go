package zkcoord_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestLeadershipGivenUpOnACutLeavesNoCandidate: a leader whose link is down for a third of
// the session timeout gives its leadership up, and its Resign cannot reach the ensemble; the
// link comes back before the session expires. Its candidate znode, still the lowest, must not
// outlive the leadership, or no other candidate is ever elected while that session lives.
func TestLeadershipGivenUpOnACutLeavesNoCandidate(t *testing.T) {
	const timeout = 6 * time.Second
	e := shared.Ensemble(t)
	ctx := testenv.Context(t, 90*time.Second)
	root := "/cut-leader-" + coordtest.Instance()
	proxy := testenv.StartProxy(t, e.Addrs()[0])
	a := open(t, []string{proxy.Addr}, root, timeout)
	b := open(t, e.Addrs(), root, timeout)
	la, err := a.Campaign(ctx, "monitor", "mon-a")
	if err != nil {
		t.Fatal(err)
	}
	bch := coordtest.CampaignAsync(ctx, b, "monitor", "mon-b")
	sess := a.SessionID()
	cut := time.Now()
	proxy.Blackhole()
	select {
	case <-la.Done():
	case <-time.After(timeout):
		t.Fatal("leadership not given up within a session timeout of the cut")
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	rerr := la.Resign(rctx)
	cancel()
	t.Logf("gave up %v after the cut; resign: %v", time.Since(cut).Round(time.Millisecond), rerr)
	proxy.Restore()
	testenv.Eventually(t, timeout, 50*time.Millisecond, func() error {
		if !a.LastHeard().After(cut) {
			return errors.New("the ensemble has not answered a since the cut")
		}
		return nil
	})
	if a.SessionID() != sess {
		t.Fatalf("a's session changed (%x → %x): the cut was meant to be shorter than the timeout", sess, a.SessionID())
	}
	select {
	case r := <-bch:
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	case <-time.After(3 * timeout):
		l, _ := b.Leader(ctx, "monitor")
		t.Fatalf("mon-b not elected %v after the cut, with a's session alive; Leader = %q", time.Since(cut).Round(time.Second), l)
	}
}
