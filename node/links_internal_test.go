package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/routes"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// A full push of more filters than one frame holds goes in chunks of about
// linkBatchBytes: the first replaces the receiver's copy, the others add to it, and the
// receiver ends with every filter and nothing else.
func TestFullRoutesPushInChunks(t *testing.T) {
	t.Parallel()
	counts := map[string]int{}
	for i := range 60_000 {
		counts[fmt.Sprintf("devices/%036d/cmd", i)] = 1 + i%3
	}
	chunks := splitRoutes(counts, true)
	if len(chunks) < 3 {
		t.Fatalf("%d chunks for %d filters of ~50 bytes, want several", len(chunks), len(counts))
	}
	tb := routes.New("receiver")
	tb.Apply("sender", 1, true, map[string]int{"stale/filter": 1}) // what the receiver held before
	for i, b := range chunks {
		if len(b) > linkBatchBytes+64 {
			t.Fatalf("chunk %d is %d bytes, over %d", i, len(b), linkBatchBytes)
		}
		u, err := decodeRoutes(b)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if u.full != (i == 0) {
			t.Fatalf("chunk %d full=%v", i, u.full)
		}
		tb.Apply("sender", 1, u.full, u.counts)
	}
	if got := tb.PeerFilters("sender"); got != len(counts) {
		t.Fatalf("the receiver holds %d filters, want %d", got, len(counts))
	}
	if nodes, _ := tb.Match("stale/filter"); len(nodes) != 0 {
		t.Fatal("a filter the full push did not name survived it")
	}
	if nodes, _ := tb.Match("devices/000000000000000000000000000000059999/cmd"); len(nodes) != 1 {
		t.Fatalf("the last filter does not route: %v", nodes)
	}
	if one := splitRoutes(map[string]int{}, true); len(one) != 1 {
		t.Fatalf("an empty full push is %d chunks, want 1 (it clears the receiver's copy)", len(one))
	}
}

// TestCloseDoesNotWaitOutADialToASilentPeer: a node whose publish/subscribe link is
// dialling a peer that accepts and never answers closes at once; it does not wait for the
// dial's timeout (a rolling restart beside a frozen node would stall that long per node).
func TestCloseDoesNotWaitOutADialToASilentPeer(t *testing.T) {
	t.Parallel()
	frozen := testenv.StartSilent(t)
	env := newFaultEnv(t)
	ctx := testenv.Context(t, 30*time.Second)
	m := coordtest.NewMember("frozen")
	m.InternalAddr = frozen.Addr
	if _, err := env.coord(t).Register(ctx, m); err != nil {
		t.Fatal(err)
	}
	n := startFaultNode(t, faultConfig(t, "cl-1"), env.coord(t), env.store(t))
	select {
	case <-frozen.Accepted:
	case <-ctx.Done():
		t.Fatal("the node never dialled its peer")
	}
	start := time.Now()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if took, dial := time.Since(start), wire.DefaultDialOptions().DialTimeout; took >= dial/2 {
		t.Fatalf("Close took %v with a dial to a silent peer in flight (dial timeout %v): it waited the dial out",
			took.Round(time.Millisecond), dial)
	}
}
