package node

import (
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
)

// TestTakeoversOfUnreachableNodesFitTheBudget: "roam" has two earlier sessions whose
// takeover is pending, on two nodes that are live but cannot be reached from node 1
// (partitioned: TCP connects, the wire hello never comes). Each takeover costs a direct
// attempt (1s), a notice and a lease wait (2.2s); told one after the other they would
// exceed tellBudget (6.2s with the defaults) and the client could not connect anywhere
// while the two nodes stay unreachable. takeOver tells them at once, so the CONNECT is
// admitted within one node's cost.
func TestTakeoversOfUnreachableNodesFitTheBudget(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	silent := testenv.SilentAddr(t) // accepts, never answers
	ctx := testenv.Context(t, 60*time.Second)
	c := env.coord(t)
	epochs := map[string]int64{}
	for _, id := range []string{"far-x", "far-y"} {
		m := coordtest.NewMember(id)
		m.InternalAddr = silent
		reg, err := c.Register(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := reg.Status()
		epochs[id] = s.Epoch
	}
	st := env.store(t)
	n := startFaultNode(t, faultConfig(t, "tb-1"), env.coord(t), st)
	faultWaitFor(t, 10*time.Second, "node 1 sees both far nodes", func() bool {
		_, okx := n.members.Live("far-x", epochs["far-x"])
		_, oky := n.members.Live("far-y", epochs["far-y"])
		return okx && oky
	})
	// The client's session on far-x was replaced by one on far-y whose takeover never got
	// confirmed (its node refused that connection, say, and it is still connected there).
	for _, p := range []store.Presence{
		{Client: "roam", Node: "far-x", Epoch: epochs["far-x"], Session: "sx", Since: time.Now().UTC()},
		{Client: "roam", Node: "far-y", Epoch: epochs["far-y"], Session: "sy", Since: time.Now().UTC()},
	} {
		if _, err := st.Connect(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	cl, err := testenv.DialMQTT(n.Member().MQTTAddr, "roam", testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("CONNECT refused after %v: %v (the two takeovers need two lease waits, told one after the other, "+
			"in a budget of one: %v)", time.Since(start).Round(100*time.Millisecond), err, n.tellBudget())
	}
	cl.Close()
}
