package node_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
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

// noticesDone is a store that reports when the node has confirmed (after acting on it) a
// mailbox notice for client.
type noticesDone struct {
	store.Store
	client string
	taken  *atomic.Uint64 // the highest seq of such a notice taken
	done   chan struct{}
}

func (s noticesDone) TakeNotices(ctx context.Context, node string, limit int) ([]store.Notice, error) {
	ns, err := s.Store.TakeNotices(ctx, node, limit)
	for _, nt := range ns {
		if nt.Kind == store.NoticeMailbox && nt.Client == s.client {
			s.taken.Store(max(s.taken.Load(), nt.Seq))
		}
	}
	return ns, err
}

func (s noticesDone) DoneNotices(ctx context.Context, node string, upTo uint64) error {
	err := s.Store.DoneNotices(ctx, node, upTo)
	if seq := s.taken.Load(); err == nil && seq > 0 && upTo >= seq {
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
	st := noticesDone{Store: testenv.EmbeddedStore(t), client: "rel-c", taken: new(atomic.Uint64), done: make(chan struct{}, 1)}
	tried := make(chan struct{}, 1)
	n := startNode(t, cfg, stuckWithdraw{testenv.OpenMemCoord(t, cl), tried}, st)
	c := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "rel-c", testenv.MQTTOptions{CleanStart: true})
	if err := c.Subscribe("inbox/rel-c", 1); err != nil {
		t.Fatal(err)
	}

	mon, ctx := quarantine(t, cl, "rel-1")
	select {
	case <-tried: // past the grace: not live, the entry still there
	case <-ctx.Done():
		t.Fatal("the node never tried to withdraw")
	}

	if _, err := st.Append(ctx, 100, []store.Message{{ID: "m1", To: "rel-c", Topic: "inbox/rel-c", Payload: []byte("m1"), QoS: 1, TTL: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Notify(ctx, "rel-1", store.Notice{Kind: store.NoticeMailbox, Client: "rel-c"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-st.done: // the mailbox notice was acted on while the node was not live
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

// TestReleasedBeforeLeavingTheLiveSetPushesItsRoutes: a subscription made on a quarantined
// node after its grace, while it is not live, reaches the other nodes once the mark is
// released (its entry still there: the delete failed). The node's links skip their pushes
// while it is not live, and nothing pushed again after a release under the same epoch
// until the links' five-minute resync: a publish on another node reached no one there.
func TestReleasedBeforeLeavingTheLiveSetPushesItsRoutes(t *testing.T) {
	t.Parallel()
	cl := memcoord.NewCluster()
	st := testenv.EmbeddedStore(t)
	tried := make(chan struct{}, 1)
	cfg := testConfig(t, "relr-1")
	cfg.Auth = openACL(t)
	cfg.Quarantine.Grace = 50 * time.Millisecond
	a := startNode(t, cfg, stuckWithdraw{testenv.OpenMemCoord(t, cl), tried}, st)
	cfg = testConfig(t, "relr-2")
	cfg.Auth = openACL(t)
	b := startNode(t, cfg, testenv.OpenMemCoord(t, cl), st)
	sub := testenv.ConnectMQTT(t, a.Member().MQTTAddr, "relr-sub", testenv.MQTTOptions{CleanStart: true})
	pub := testenv.ConnectMQTT(t, b.Member().MQTTAddr, "relr-pub", testenv.MQTTOptions{CleanStart: true})

	mon, ctx := quarantine(t, cl, "relr-1")
	select {
	case <-tried: // past the grace: not live, the entry still there
	case <-ctx.Done():
		t.Fatal("the node never tried to withdraw")
	}
	if err := sub.Subscribe("t/relr", 1); err != nil {
		t.Fatal(err)
	}
	if err := mon.Release(ctx, "relr-1"); err != nil {
		t.Fatal(err)
	}
	// Published until one arrives: those before the other node learns the route reach
	// no one, as on any broker.
	got := make(chan error, 1)
	go func() { _, err := sub.Next(10 * time.Second); got <- err }()
	for i := 0; ; i++ {
		if err := pub.Publish("t/relr", []byte(fmt.Sprint(i)), 1); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("the subscription made while the node was not live never reached the other node: %v", err)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}
