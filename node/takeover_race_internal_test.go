package node

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
)

// slowConnectStore delays the answer of one Connect (after Redis wrote the presence), as
// a slow reply, a GC pause or a busy machine would.
type slowConnectStore struct {
	store.Store
	client  string
	delay   time.Duration
	written chan struct{}
}

func (s *slowConnectStore) Connect(ctx context.Context, p store.Presence) (store.ConnectResult, error) {
	prev, err := s.Store.Connect(ctx, p)
	if err == nil && p.Client == s.client && s.written != nil {
		close(s.written)
		s.written = nil
		time.Sleep(s.delay)
	}
	return prev, err
}

// TestConcurrentConnectsOnTwoNodesLeaveOneSession: one client id connects to node 1 and, a
// moment later, to node 2, while node 1's answer from the store is slow. Node 1 puts the
// session in its table before its presence write, so node 2's takeover kick, which follows
// that write, finds it and revokes it: one session survives, and the old one receives
// nothing queued after the new one's CONNACK.
func TestConcurrentConnectsOnTwoNodesLeaveOneSession(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	slow := &slowConnectStore{Store: env.store(t), client: "twin", delay: time.Second, written: make(chan struct{})}
	written := slow.written
	cfg1, cfg2 := faultConfig(t, "cc-1"), faultConfig(t, "cc-2")
	for _, c := range []*Config{&cfg1, &cfg2} {
		c.Lease.Duration, c.Lease.Interval = 600*time.Millisecond, 100*time.Millisecond
	}
	n1 := startFaultNode(t, cfg1, env.coord(t), slow)
	st2 := env.store(t)
	n2 := startFaultNode(t, cfg2, env.coord(t), st2)
	faultWaitFor(t, 10*time.Second, "node 2 sees node 1 live", func() bool {
		_, ok := n2.members.Live("cc-1", n1.Member().Epoch)
		return ok
	})

	type dialed struct {
		cl  *testenv.MQTTClient
		err error
	}
	first := make(chan dialed, 1)
	go func() {
		cl, err := testenv.DialMQTT(n1.Member().MQTTAddr, "twin", testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 10 * time.Second})
		first <- dialed{cl, err}
	}()
	<-written // node 1 has written S1's presence and is still in OnConnect

	_ = testenv.ConnectMQTT(t, n2.Member().MQTTAddr, "twin", testenv.MQTTOptions{CleanStart: true})
	connack2 := time.Now()
	d := <-first
	if d.err != nil {
		t.Logf("the first connection was refused (%v): no double session this run", d.err)
		return
	}
	old := d.cl
	t.Cleanup(old.Close)
	ctx := testenv.Context(t, 10*time.Second)
	p, _, err := st2.Lookup(ctx, "twin")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("presence names %s session %s; node 1 answered the first connection's CONNACK %v after node 2's",
		p.Node, p.Session, time.Since(connack2).Round(time.Millisecond))

	// A message queued for the client after the new session's CONNACK.
	if _, err := st2.Append(ctx, 100, []store.Message{{
		ID: "after-takeover", To: "twin", Topic: "inbox/twin", Payload: []byte("for the new session"), QoS: 1,
		Accepted: time.Now().UTC(), TTL: time.Minute,
	}}); err != nil {
		t.Fatal(err)
	}
	// Well past node 1's lease: any takeover node 1 was told of has taken effect by now.
	select {
	case <-old.Done():
		return // the old session was ended: the promise holds
	case <-time.After(3 * cfg1.Lease.Duration):
	}
	if err := old.Subscribe("inbox/twin", 1); err != nil {
		t.Fatalf("old session: subscribe: %v", err)
	}
	m, err := old.Next(3 * time.Second)
	st := n1.clients.get("twin")
	revoked := st != nil && st.revoked.Load()
	if err == nil {
		t.Fatalf("the old session (node 1, not named by the presence %s/%s, not revoked: %v) is still connected "+
			"%v after the new session's CONNACK on node 2, and received %q queued after that CONNACK",
			p.Node, p.Session, revoked, time.Since(connack2).Round(time.Millisecond), m.ID)
	}
	t.Fatalf("the old session is still connected on node 1 %v after the new session's CONNACK on node 2 "+
		"(revoked on node 1: %v; presence names %s): one client id is connected on two nodes",
		time.Since(connack2).Round(time.Millisecond), revoked, p.Node)
}
