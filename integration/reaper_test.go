package integration

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
)

// TestReaperClearsWhatItDidNotSee: the reaper's leader (a router) and a node with
// connected clients are killed together (kill -9), so no reaper sees the node leave.
// Once the node is out of the live set its clients' presence is still recorded; when the
// next reaper leader starts (a new router) it sweeps the recorded (node, epoch) pairs and
// clears the dead node's presence.
func TestReaperClearsWhatItDidNotSee(t *testing.T) {
	c := newCluster(t)
	lead := c.startRouter("reap-1")
	n := c.startNode("reap-n1")
	ctx := testenv.Context(t, 2*time.Minute)
	st, err := redisstore.New(ctx, redisstore.Config{Addr: c.redis, Prefix: "sb" + c.root[4:12]})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	clients := []string{"reap-a", "reap-b", "reap-c"}
	for _, id := range clients {
		cl, err := testenv.DialMQTT(n.member.MQTTAddr, id, testenv.MQTTOptions{CleanStart: true})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
	}
	online := func(id string) (store.Presence, error) {
		p, _, err := st.Lookup(ctx, id)
		return p, err
	}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, id := range clients {
			if p, err := online(id); err != nil || p.Node != n.id {
				return fmt.Errorf("%s's presence %+v, %v; want on %s", id, p, err, n.id)
			}
		}
		return nil
	})
	// The router leads the reaper election: it is the only candidate.
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		name, err := c.obs.Leader(ctx, "reaper")
		if err != nil || name != "reap-1" {
			return fmt.Errorf("reaper leader %q, %v", name, err)
		}
		return nil
	})

	lead.Kill()
	n.Kill()
	c.waitMember(n.id, 10*time.Second, func(_ coord.Member, ok bool) bool { return !ok })
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if name, err := c.obs.Leader(ctx, "reaper"); err == nil {
			return fmt.Errorf("the reaper election is still led by %q", name)
		}
		return nil
	})
	// Nobody saw the node leave: its clients' presence is still there.
	for _, id := range clients {
		if p, err := online(id); err != nil || p.Node != n.id {
			t.Fatalf("%s's presence %+v, %v before a new reaper leads; want still on %s", id, p, err, n.id)
		}
	}
	dead := store.NodeEpoch{Node: n.id, Epoch: n.member.Epoch}
	if pairs, err := st.RecordedEpochs(ctx, store.NodeEpoch{}, store.MaxRecordedEpochs); err != nil || !slices.Contains(pairs, dead) {
		t.Fatalf("recorded epochs %v, %v; want %v among them", pairs, err, dead)
	}

	start := time.Now()
	c.startRouter("reap-2")
	testenv.Eventually(t, 20*time.Second, 20*time.Millisecond, func() error {
		for _, id := range clients {
			if p, err := online(id); err != nil || p.Online() {
				return fmt.Errorf("%s's presence %+v, %v; want cleared", id, p, err)
			}
		}
		return nil
	})
	t.Logf("the new reaper leader cleared the dead node's %d clients %v after it started", len(clients), time.Since(start).Round(time.Millisecond))
	if pairs, err := st.RecordedEpochs(ctx, store.NodeEpoch{}, store.MaxRecordedEpochs); err != nil || slices.Contains(pairs, dead) {
		t.Fatalf("recorded epochs %v, %v; want %v forgotten", pairs, err, dead)
	}
}
