package router_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
)

// TestUnreachableNodeCostsOneDialPerPass: a live node the router cannot reach
// (partitioned: TCP connects, the wire hello never comes back) holds four of a request's
// clients. The request must pay one dial timeout per pass for that node, not one per
// client (the pool dials again after every failed dial): the distinct nodes of a request
// are dialed at once, before any group is sent.
func TestUnreachableNodeCostsOneDialPerPass(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	cl := newCluster(t)
	silent := testenv.SilentAddr(t) // accepts, never answers
	m := coordtest.NewMember("blackholed")
	m.InternalAddr = silent
	m.LeaseMillis = 300 // queueing for it waits its lease out (it cannot be told directly)
	reg, err := cl.c.Register(testenv.Context(t, 10*time.Second), m)
	if err != nil {
		t.Fatal(err)
	}
	status, _ := reg.Status()
	waitLive(t, cl.w, "blackholed", status.Epoch)
	ctx := testenv.Context(t, 120*time.Second)
	const n = 4
	var msgs []router.Message
	for i := range n {
		id := fmt.Sprintf("bh%d-%s", i, coordtest.Instance())
		if _, err := st.Connect(ctx, store.Presence{Client: id, Node: "blackholed", Epoch: status.Epoch,
			Session: "s-" + id, Since: time.Now()}); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, router.Message{To: id, Topic: "inbox/" + id, Payload: []byte("x"), QoS: 1, TTL: time.Hour})
	}
	const dial = 300 * time.Millisecond
	r := newRouter(t, st, cl.w, func(c *router.Config) { c.DialTimeout = dial })
	start := time.Now()
	out := r.Route(ctx, msgs, 0)
	took := time.Since(start)
	for i, o := range out {
		t.Logf("message %d: %v %v", i, o.Status, o.Err)
	}
	// Two passes' dials, then queueing: a dial to tell the node directly, and its lease
	// waited out; and a second for a loaded machine. One dial per client would cost
	// 4×2×300ms more.
	if budget := 3*dial + time.Duration(m.LeaseMillis)*time.Millisecond*11/10 + time.Second; took > budget {
		t.Fatalf("one request to %d clients on one unreachable node took %v, over %v (a %v dial per client, per pass)",
			n, took.Round(time.Millisecond), budget, dial)
	}
}
