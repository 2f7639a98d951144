package node_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/node"
	"github.com/switchboard-mqtt/switchboard/store"
)

// stuckWithdraw is a coordinator whose registrations cannot leave the live set: their
// Withdraw fails, as when the coordinator stops answering the delete.
type stuckWithdraw struct {
	node.Coordinator
	tried chan struct{} // gets a value at each failed Withdraw, if nobody waits it is dropped
}

func (c stuckWithdraw) Register(ctx context.Context, m coord.Member) (coord.Registration, error) {
	r, err := c.Coordinator.Register(ctx, m)
	if err != nil {
		return nil, err
	}
	return stuckRegistration{r, c.tried}, nil
}

type stuckRegistration struct {
	coord.Registration
	tried chan struct{}
}

func (r stuckRegistration) Withdraw(context.Context) error {
	select {
	case r.tried <- struct{}{}:
	default:
	}
	return errors.New("the coordinator does not answer")
}

// noticesDone is a store that reports each round of notices the node confirmed (after it
// acted on them).
type noticesDone struct {
	store.Store
	done chan struct{}
}

func (s noticesDone) DoneNotices(ctx context.Context, node string, upTo uint64) error {
	err := s.Store.DoneNotices(ctx, node, upTo)
	if err == nil {
		select {
		case s.done <- struct{}{}:
		default:
		}
	}
	return err
}

// TestReleasedBeforeLeavingTheLiveSetDeliversAgain: a quarantined node stops delivering
// when its grace ends, before it deletes its entry; if the delete does not go through and
// the mark is released meanwhile, the node is live again under the same epoch, and a
// message queued for a connected client while it was not live is delivered then. The
// client's sender had stopped on "node not live", and nothing woke it (the presence audit
// would have, up to AuditInterval later; it is off here).
func TestReleasedBeforeLeavingTheLiveSetDeliversAgain(t *testing.T) {
	t.Parallel()
	cl := memcoord.NewCluster()
	cfg := testConfig(t, "rel-1")
	cfg.Quarantine.Grace = 50 * time.Millisecond
	cfg.AuditInterval = 0
	st := noticesDone{Store: testenv.EmbeddedStore(t), done: make(chan struct{}, 1)}
	tried := make(chan struct{}, 1)
	n := startNode(t, cfg, stuckWithdraw{testenv.OpenMemCoord(t, cl), tried}, st)
	c := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "rel-c", testenv.MQTTOptions{CleanStart: true})
	if err := c.Subscribe("inbox/rel-c", 1); err != nil {
		t.Fatal(err)
	}

	mon := testenv.OpenMemCoord(t, cl)
	ctx := testenv.Context(t, 30*time.Second)
	lead, err := mon.Campaign(ctx, "monitor", "mon")
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.SetQuarantine(ctx, coord.Quarantine{Node: "rel-1", Reason: "test", At: time.Now(), By: "mon"}, lead); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tried: // past the grace: not live, the entry still there
	case <-ctx.Done():
		t.Fatal("the node never tried to withdraw")
	}

	if _, err := st.Append(ctx, 100, []store.Message{{ID: "m1", To: "rel-c", Topic: "inbox/rel-c", Payload: []byte("m1"), QoS: 1, TTL: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	for len(st.done) > 0 {
		<-st.done
	}
	if err := st.Notify(ctx, "rel-1", store.Notice{Kind: store.NoticeMailbox, Client: "rel-c"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-st.done: // the notice was acted on while the node was not live
	case <-ctx.Done():
		t.Fatal("the node never took the mailbox notice")
	}
	if err := mon.Release(ctx, "rel-1"); err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(10 * time.Second)
	if err != nil || m.ID != "m1" {
		t.Fatalf("received %q, %v; want m1 once the mark was released", m.ID, err)
	}
}
