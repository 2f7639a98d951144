package node

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
)

// lostConnectAnswerStore writes one Connect of client (once armed) and answers it with an
// error, as a reply that came after the deadline does.
type lostConnectAnswerStore struct {
	store.Store
	client string
	armed  atomic.Bool
}

func (s *lostConnectAnswerStore) Connect(ctx context.Context, p store.Presence) (store.ConnectResult, error) {
	res, err := s.Store.Connect(ctx, p)
	if err == nil && p.Client == s.client && s.armed.CompareAndSwap(true, false) {
		return store.ConnectResult{}, store.ErrUnavailable
	}
	return res, err
}

// queueFor has a router's part: it queues one message for client and tells its node.
func queueFor(t *testing.T, n *Node, client, id string) {
	t.Helper()
	if _, err := n.teller.Queue(testenv.Context(t, 10*time.Second), "", []store.Message{{ID: id, To: client,
		Topic: "inbox/" + client, Payload: []byte(id), QoS: 1, Accepted: time.Now().UTC(), TTL: time.Minute}}); err != nil {
		t.Fatal(err)
	}
}

// TestLostConnectAnswerIsRetried: S0 of "ghost" is connected and ready on node 2. A second
// CONNECT of "ghost" reaches node 1, whose presence write succeeds but whose answer is
// lost. Node 1 must not leave a presence naming a session that does not exist, nor S0
// taken over without being told: it asks again (the store answers a second Connect of the
// same session with what the first returned), takes S0 over and admits the connection,
// which then receives what is queued for the client.
func TestLostConnectAnswerIsRetried(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	lost := &lostConnectAnswerStore{Store: env.store(t), client: "ghost"}
	n1 := startFaultNode(t, faultConfig(t, "gh-1"), env.coord(t), lost)
	n2 := startFaultNode(t, faultConfig(t, "gh-2"), env.coord(t), env.store(t))
	faultWaitFor(t, 10*time.Second, "node 1 sees node 2 live", func() bool {
		_, ok := n1.members.Live("gh-2", n2.Member().Epoch)
		return ok
	})
	s0 := testenv.ConnectMQTT(t, n2.Member().MQTTAddr, "ghost", testenv.MQTTOptions{CleanStart: true})
	if err := s0.Subscribe("inbox/ghost", 1); err != nil {
		t.Fatal(err)
	}
	faultWaitFor(t, 5*time.Second, "S0 ready on node 2", func() bool {
		st := n2.clients.get("ghost")
		return st != nil && st.ready.Load() && n2.blocked(st) == ""
	})
	lost.armed.Store(true)
	s1 := testenv.ConnectMQTT(t, n1.Member().MQTTAddr, "ghost", testenv.MQTTOptions{CleanStart: true})
	if lost.armed.Load() {
		t.Fatal("the store's Connect was not called")
	}
	select {
	case <-s0.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("S0 is still connected on node 2 after S1's CONNACK on node 1")
	}
	if err := s1.Subscribe("inbox/ghost", 1); err != nil {
		t.Fatal(err)
	}
	queueFor(t, n2, "ghost", "after")
	if m, err := s1.Next(5 * time.Second); err != nil || m.ID != "after" {
		t.Fatalf("S1 did not receive the message queued after its CONNECT: %v %q", err, m.ID)
	}
}

// auditConfig is a node configuration with a quick presence audit.
func auditConfig(t *testing.T, id string) Config {
	cfg := faultConfig(t, id)
	cfg.AuditInterval = 200 * time.Millisecond
	return cfg
}

// TestPresenceAuditRecordsALostPresence: the store loses a connected client's presence (an
// operator's mistake, a failover that lost writes, the residue of a CONNECT whose every
// answer was lost). A message queued then goes into the mailbox with no node told. The
// audit must find the presence gone, record it again and read the mailbox: the client,
// connected all along, receives the message.
func TestPresenceAuditRecordsALostPresence(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	st := env.store(t)
	n := startFaultNode(t, auditConfig(t, "au-1"), env.coord(t), st)
	c := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "lost", testenv.MQTTOptions{CleanStart: true})
	if err := c.Subscribe("inbox/lost", 1); err != nil {
		t.Fatal(err)
	}
	var cs *clientState
	faultWaitFor(t, 5*time.Second, "client ready", func() bool {
		cs = n.clients.get("lost")
		return cs != nil && cs.ready.Load() && n.blocked(cs) == ""
	})
	// A first message while the presence stands: once it arrives, the node's first read of
	// the mailbox (on the subscription) is done, and only the audit can find what follows.
	queueFor(t, n, "lost", "first")
	if m, err := c.Next(5 * time.Second); err != nil || m.ID != "first" {
		t.Fatalf("the message queued while the presence stood was not delivered: %v %q", err, m.ID)
	}
	ctx := testenv.Context(t, 10*time.Second)
	if ok, err := st.Disconnect(ctx, "lost", cs.session); err != nil || !ok {
		t.Fatalf("clearing the presence behind the node's back: %v %v", ok, err)
	}
	queueFor(t, n, "lost", "unseen")
	if m, err := c.Next(5 * time.Second); err != nil || m.ID != "unseen" {
		t.Fatalf("the message queued while the presence was lost was not delivered: %v %q", err, m.ID)
	}
	p, _, err := st.Lookup(ctx, "lost")
	if err != nil || p.Session != cs.session || p.Node != "au-1" {
		t.Fatalf("presence after the audit: %+v %v (want session %s on au-1)", p, err, cs.session)
	}
}

// TestPresenceAuditEndsASessionAnotherOwns: the presence names a later session on another
// node, whose word to this node was lost. The audit must end the session here: one client
// id, one node.
func TestPresenceAuditEndsASessionAnotherOwns(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	st := env.store(t)
	n := startFaultNode(t, auditConfig(t, "au-2"), env.coord(t), st)
	c := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "usurped", testenv.MQTTOptions{CleanStart: true})
	faultWaitFor(t, 5*time.Second, "client connected", func() bool {
		cs := n.clients.get("usurped")
		return cs != nil && cs.connected.Load() && cs.epoch.Load() == n.epoch.Load()
	})
	// What another node's CONNECT writes; it never tells this node.
	ctx := testenv.Context(t, 10*time.Second)
	if _, err := st.Connect(ctx, store.Presence{Client: "usurped", Node: "elsewhere", Epoch: 1, Session: "later",
		Since: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the session another owns is still connected")
	}
}

// gatedTakeStore lets a notice take through and then holds its answer (once armed) until
// release is closed: a round that read the notices before one was stored and renews the
// lease after.
type gatedTakeStore struct {
	store.Store
	mu      sync.Mutex
	armed   bool
	held    chan struct{}
	release chan struct{}
}

func (s *gatedTakeStore) TakeNotices(ctx context.Context, node string, max int) ([]store.Notice, error) {
	ns, err := s.Store.TakeNotices(ctx, node, max)
	s.mu.Lock()
	hold := s.armed
	s.armed = false
	s.mu.Unlock()
	if hold {
		close(s.held)
		<-s.release
	}
	return ns, err
}

// TestReassertActsOnRevocationsFirst: S1 is connected on node B. B's epoch leaves the live
// set (here: B stops sending to S1 as it does then); the client connects S3 elsewhere,
// whose node finds B's epoch gone and so only stores a revocation for B; S3 disconnects,
// clearing the presence. B comes back under its epoch and reasserts S1, which succeeds
// (the presence is free). Before it sends S1 anything it must act on the notices stored
// before the reassertion, though a round that read the notices just before the revocation
// was stored renews its lease just after: S1 receives nothing and is disconnected.
func TestReassertActsOnRevocationsFirst(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	base := env.store(t)
	gated := &gatedTakeStore{Store: base, held: make(chan struct{}), release: make(chan struct{})}
	n := startFaultNode(t, faultConfig(t, "ra-1"), env.coord(t), gated)
	s1 := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "back", testenv.MQTTOptions{CleanStart: true})
	if err := s1.Subscribe("inbox/back", 1); err != nil {
		t.Fatal(err)
	}
	var cs *clientState
	faultWaitFor(t, 5*time.Second, "S1 ready", func() bool {
		cs = n.clients.get("back")
		return cs != nil && cs.ready.Load() && n.blocked(cs) == ""
	})
	epoch := n.epoch.Load()
	cs.epoch.Store(0) // as when B's epoch left: nothing is sent to S1 until it is reasserted

	gated.mu.Lock()
	gated.armed = true
	gated.mu.Unlock()
	<-gated.held // a round has read the notices; its answer is on the way

	// The other node's part: take the session over, find B's epoch gone (a revocation is
	// stored, nothing waited for), confirm, disconnect.
	ctx := testenv.Context(t, 10*time.Second)
	res, err := base.Connect(ctx, store.Presence{Client: "back", Node: "ra-other", Epoch: epoch + 1000, Session: "S3",
		Since: time.Now().UTC()})
	if err != nil || res.Prev.Session != cs.session {
		t.Fatalf("S3's connect: %v %+v", err, res)
	}
	if err := base.Notify(ctx, "ra-1", store.Notice{Kind: store.NoticeRevoke, Client: "back", Session: cs.session}); err != nil {
		t.Fatal(err)
	}
	if err := base.ConfirmTakeover(ctx, "back", "S3"); err != nil {
		t.Fatal(err)
	}
	if _, err := base.Disconnect(ctx, "back", "S3"); err != nil {
		t.Fatal(err)
	}
	queueFor(t, n, "back", "for-S3") // offline now: into the mailbox, for the client's next session

	reasserted := make(chan struct{})
	go func() {
		defer close(reasserted)
		n.reassertAll(context.Background(), epoch)
	}()
	faultWaitFor(t, 5*time.Second, "S1 reasserted", func() bool {
		p, _, err := base.Lookup(ctx, "back")
		return err == nil && p.Session == cs.session
	})
	close(gated.release) // the stale round renews the lease
	select {
	case <-s1.Done():
	case <-time.After(7 * time.Second):
		t.Fatal("S1, taken over, is still connected")
	}
	// Done closes once the client's handlers have returned: whatever S1 received is queued.
	select {
	case m := <-s1.Messages():
		t.Fatalf("S1, taken over, received %q after it was reasserted", m.ID)
	default:
	}
	<-reasserted
}

// lookupCountingStore records the clients of each LookupAll.
type lookupCountingStore struct {
	store.Store
	mu    sync.Mutex
	calls [][]string
}

func (s *lookupCountingStore) LookupAll(ctx context.Context, clients []string) []store.LookupResult {
	s.mu.Lock()
	s.calls = append(s.calls, append([]string(nil), clients...))
	s.mu.Unlock()
	return s.Store.LookupAll(ctx, clients)
}

// TestPresenceAuditLooksUpClientsTogether: an audit looks up its clients' presences in
// one store call per auditLookups clients, not one call each (on Redis, one round trip
// for them all).
func TestPresenceAuditLooksUpClientsTogether(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	st := &lookupCountingStore{Store: env.store(t)}
	n := startFaultNode(t, auditConfig(t, "au-3"), env.coord(t), st)
	ids := []string{"a1", "a2", "a3"}
	for _, id := range ids {
		testenv.ConnectMQTT(t, n.Member().MQTTAddr, id, testenv.MQTTOptions{CleanStart: true})
	}
	faultWaitFor(t, 10*time.Second, "an audit of the three clients in one look-up", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		for _, c := range st.calls {
			if len(c) == len(ids) {
				return true
			}
		}
		return false
	})
}
