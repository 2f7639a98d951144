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

// TestTellWaitsTheNodesOwnLeaseForANewEpoch: a node registered a moment ago, not yet in the
// Teller's live set, is told through the store; when it appears with a lease longer than
// the default, the wait is lengthened to that lease (a node with --lease 3s may be sending
// under a lease renewed just before the notice was stored for up to 3s).
func TestTellWaitsTheNodesOwnLeaseForANewEpoch(t *testing.T) {
	pool := wire.NewPool(wire.DialOptions{DialTimeout: 100 * time.Millisecond})
	defer pool.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close() // the node cannot be reached directly
	const nodeLease = 3 * time.Second
	n1 := coord.Member{ID: "n1", Epoch: 50, InternalAddr: dead, LeaseMillis: nodeLease.Milliseconds()}
	live := newMembers(coord.Member{ID: "n2", Epoch: 40})
	st := newNotices()
	tl := lease.NewTeller(lease.TellerConfig{DirectTimeout: 100 * time.Millisecond}, &mailboxes{notices: st}, live, pool, quiet)
	go func() {
		// The watcher catches up: n1 appears under epoch 50, with its 3s lease.
		time.Sleep(200 * time.Millisecond)
		live.mu.Lock()
		live.set["n1"] = n1
		close(live.changed)
		live.changed = make(chan struct{})
		live.mu.Unlock()
	}()
	start := time.Now()
	err := tl.Tell(context.Background(), "n1", 50, []store.Notice{{Kind: store.NoticeRevoke, Client: "c", Session: "old"}})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if took < nodeLease {
		t.Fatalf("Tell returned after %v, before n1's %v lease can have run out (it waited lease.DefaultDuration, "+
			"not the node's LeaseMillis)", took.Round(time.Millisecond), nodeLease)
	}
}
