package lease_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/lease"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// TestUnknownEpochWaitsTheLongestLease: every node runs --lease 3s. n1 registered again
// (epoch 40 -> 50) and reasserted its clients' presence under 50, but this Teller's live
// set still shows n1@40 (with its 3s lease): a watcher a little behind. Tell(n1, 50) stores
// the notice and must wait out the longest lease it knows of (3s, n1's own), not the
// default 2s: n1, under a lease renewed just before the notice was stored, may write to
// the revoked session for up to 3s.
func TestUnknownEpochWaitsTheLongestLease(t *testing.T) {
	pool := wire.NewPool(wire.DialOptions{DialTimeout: 100 * time.Millisecond})
	defer pool.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	const nodeLease = 3 * time.Second
	live := newMembers(
		coord.Member{ID: "n1", Epoch: 40, InternalAddr: dead, LeaseMillis: nodeLease.Milliseconds()},
		coord.Member{ID: "n2", Epoch: 30, LeaseMillis: nodeLease.Milliseconds()},
	)
	st := newNotices()
	tl := lease.NewTeller(lease.TellerConfig{DirectTimeout: 100 * time.Millisecond}, &mailboxes{notices: st}, live, pool, quiet)
	start := time.Now()
	if err := tl.Tell(context.Background(), "n1", 50, []store.Notice{{Kind: store.NoticeRevoke, Client: "c", Session: "old"}}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if max := lease.MaxTellWait([]coord.Member{{LeaseMillis: nodeLease.Milliseconds()}}); took < nodeLease {
		t.Fatalf("Tell returned after %v, before n1's %v lease can have run out (MaxTellWait of the live set: %v)",
			took.Round(time.Millisecond), nodeLease, max)
	}
}
