package node

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// gatedConnectStore holds one Connect of client (once armed) until release is closed,
// then fails it and the node's immediate retry (fail) or lets it through: a slow Redis, a
// GC pause, a timeout.
type gatedConnectStore struct {
	store.Store
	client   string
	fail     bool
	mu       sync.Mutex
	armed    bool
	failNext bool
	entered  chan struct{}
	release  chan struct{}
}

func (s *gatedConnectStore) arm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = true
}

func (s *gatedConnectStore) Connect(ctx context.Context, p store.Presence) (store.ConnectResult, error) {
	s.mu.Lock()
	hold := s.armed && p.Client == s.client
	s.armed = s.armed && !hold
	retry := s.failNext && p.Client == s.client
	s.failNext = s.failNext && !retry
	s.mu.Unlock()
	if retry {
		return store.ConnectResult{}, store.ErrUnavailable
	}
	if hold {
		close(s.entered)
		<-s.release
		if s.fail {
			s.mu.Lock()
			s.failNext = true
			s.mu.Unlock()
			return store.ConnectResult{}, store.ErrUnavailable
		}
	}
	return s.Store.Connect(ctx, p)
}

// TestKickReachesASessionWhileALocalConnectWrites: session S1 of "twin" is connected to
// node 1 with a message in flight (unacknowledged) and a second one waiting behind it in
// its outbox. A second CONNECT of "twin" (S2) arrives at node 1: OnConnect puts S2 in the
// client table before its presence write, which is slow and then fails. Meanwhile S3
// connects on node 2: its Connect replaces S1's presence, so node 2 kicks S1 on node 1.
// The Kick must find S1 by its session (not the newest connection of the id), so S1
// receives nothing after S3's CONNACK and is disconnected: one client id, one node.
func TestKickReachesASessionWhileALocalConnectWrites(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	gated := &gatedConnectStore{Store: env.store(t), client: "twin", fail: true,
		entered: make(chan struct{}), release: make(chan struct{})}
	cfg1, cfg2 := faultConfig(t, "kw-1"), faultConfig(t, "kw-2")
	for _, c := range []*Config{&cfg1, &cfg2} {
		c.Lease.Duration, c.Lease.Interval = 600*time.Millisecond, 100*time.Millisecond
		c.Window = 1
	}
	n1 := startFaultNode(t, cfg1, env.coord(t), gated)
	n2 := startFaultNode(t, cfg2, env.coord(t), env.store(t))
	faultWaitFor(t, 10*time.Second, "node 2 sees node 1 live", func() bool {
		_, ok := n2.members.Live("kw-1", n1.Member().Epoch)
		return ok
	})

	s1 := testenv.ConnectMQTT(t, n1.Member().MQTTAddr, "twin", testenv.MQTTOptions{CleanStart: true, ManualAck: true})
	if err := s1.Subscribe("inbox/twin", 1); err != nil {
		t.Fatal(err)
	}
	var st1 *clientState
	faultWaitFor(t, 5*time.Second, "S1 ready on node 1", func() bool {
		st1 = n1.clients.get("twin")
		return st1 != nil && st1.ready.Load() && st1.epoch.Load() == n1.epoch.Load()
	})
	// M1 and M2, accepted by node 1 for S1 (a router's Deliver), before any takeover.
	answers := make(chan string, 2)
	handler{n1}.Deliver(context.Background(), wire.Deliver{
		Epoch: n1.epoch.Load(), Client: "twin", Session: st1.session, MaxWait: 60_000,
		Msgs: []wire.Msg{
			{ID: "m1", Topic: "inbox/twin", Payload: []byte("1"), QoS: 1, TTL: 60_000},
			{ID: "m2", Topic: "inbox/twin", Payload: []byte("2"), QoS: 1, TTL: 60_000},
		},
	}, func(i int, r wire.Result) { answers <- r.Status.String() })
	m1, err := s1.Next(5 * time.Second)
	if err != nil || m1.ID != "m1" {
		t.Fatalf("S1 did not get m1: %v %q", err, m1.ID)
	}
	// m2 waits behind m1 (window 1) until S1 acknowledges m1.

	gated.arm()
	s2done := make(chan error, 1)
	go func() {
		c, err := testenv.DialMQTT(n1.Member().MQTTAddr, "twin", testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 10 * time.Second})
		if err == nil {
			c.Close()
		}
		s2done <- err
	}()
	<-gated.entered // S2 is in node 1's table; its presence write hangs

	s3 := testenv.ConnectMQTT(t, n2.Member().MQTTAddr, "twin", testenv.MQTTOptions{CleanStart: true})
	connack3 := time.Now()
	_ = s3
	close(gated.release)
	t.Logf("S2 on node 1: %v", <-s2done)

	_ = m1.Ack() // fails once S1's connection is closed, as it should be
	select {
	case <-s1.Done():
	case <-time.After(3*time.Second + 3*cfg1.Lease.Duration):
		st := n1.clients.get("twin")
		t.Errorf("S1 is still connected on node 1 %v after S3's CONNACK on node 2 (revoked: %v): one client id on two nodes",
			time.Since(connack3).Round(time.Millisecond), st != nil && st.revoked.Load())
	}
	// Done closes once the client's handlers have returned: whatever S1 received is queued.
	select {
	case m2 := <-s1.Messages():
		t.Errorf("old session S1 on node 1 received %q after S3's CONNACK on node 2", m2.ID)
	default:
	}
}

// TestDrainReachesASessionWhileALocalConnectWrites: S1 of "twin" is connected to node 1
// and ready. A second CONNECT of "twin" (S2) reaches node 1; its presence write hangs and
// then fails. Meanwhile a router queues A for "twin" (the presence still names S1 on node
// 1) and tells node 1 directly (Drain). The Drain must reach every connection of the id,
// S1's included, so that when S2 is refused and S1 stays, A is delivered to S1 before B,
// which the router sends after A's 2xx.
func TestDrainReachesASessionWhileALocalConnectWrites(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	gated := &gatedConnectStore{Store: env.store(t), client: "twin", fail: true,
		entered: make(chan struct{}), release: make(chan struct{})}
	cfg1, cfg2 := faultConfig(t, "dw-1"), faultConfig(t, "dw-2")
	n1 := startFaultNode(t, cfg1, env.coord(t), gated)
	n2 := startFaultNode(t, cfg2, env.coord(t), env.store(t))
	faultWaitFor(t, 10*time.Second, "node 2 sees node 1 live", func() bool {
		_, ok := n2.members.Live("dw-1", n1.Member().Epoch)
		return ok
	})
	s1 := testenv.ConnectMQTT(t, n1.Member().MQTTAddr, "twin", testenv.MQTTOptions{CleanStart: true})
	if err := s1.Subscribe("inbox/twin", 1); err != nil {
		t.Fatal(err)
	}
	var st1 *clientState
	faultWaitFor(t, 5*time.Second, "S1 ready on node 1", func() bool {
		st1 = n1.clients.get("twin")
		return st1 != nil && st1.ready.Load() && n1.blocked(st1) == ""
	})

	gated.arm()
	s2done := make(chan error, 1)
	go func() {
		c, err := testenv.DialMQTT(n1.Member().MQTTAddr, "twin", testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 10 * time.Second})
		if err == nil {
			c.Close()
		}
		s2done <- err
	}()
	<-gated.entered

	// A router (node 2's teller stands in for one) queues A and tells node 1.
	ctx := testenv.Context(t, 10*time.Second)
	res, err := n2.teller.Queue(ctx, "", []store.Message{{ID: "A", To: "twin", Topic: "inbox/twin", Payload: []byte("A"),
		QoS: 1, Accepted: time.Now().UTC(), TTL: time.Minute}})
	if err != nil || res[0].Err != nil || res[0].Presence.Session != st1.session {
		t.Fatalf("queue A: %v %+v", err, res)
	}
	close(gated.release)
	t.Logf("S2 on node 1: %v", <-s2done)

	// B, sent after A's 2xx, to the session the presence names (S1).
	handler{n1}.Deliver(context.Background(), wire.Deliver{
		Epoch: n1.epoch.Load(), Client: "twin", Session: st1.session, MaxWait: 60_000,
		Msgs: []wire.Msg{{ID: "B", Topic: "inbox/twin", Payload: []byte("B"), QoS: 1, TTL: 60_000}},
	}, func(int, wire.Result) {})
	var got []string
	deadline := time.After(4 * time.Second)
	for len(got) < 2 {
		select {
		case m := <-s1.Messages():
			got = append(got, m.ID)
		case <-deadline:
			t.Fatalf("S1 received %v, want [A B]: A was queued (2xx) before B was sent", got)
		}
	}
	if got[0] != "A" {
		t.Fatalf("S1 received %v: B before A", got)
	}
}
