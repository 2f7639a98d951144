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

// lostAnswerAppendStore writes one Append of message id and then, once release is closed,
// answers it with an error: Redis did the work, the answer came too late (the store
// contract: "every call may fail after the store did its work").
type lostAnswerAppendStore struct {
	store.Store
	id       string
	once     sync.Once
	appended chan struct{}
	release  chan struct{}
}

func (s *lostAnswerAppendStore) Append(ctx context.Context, limit int, msgs []store.Message) ([]store.AppendResult, error) {
	hit := false
	for _, m := range msgs {
		if m.ID == s.id {
			hit = true
		}
	}
	if !hit {
		return s.Store.Append(ctx, limit, msgs)
	}
	var first bool
	s.once.Do(func() { first = true })
	res, err := s.Store.Append(ctx, limit, msgs)
	if !first || err != nil {
		return res, err
	}
	close(s.appended)
	<-s.release
	return nil, store.ErrUnavailable
}

// TestSpillFailureKeepsAnEntryAMailboxReadMoved: a slow client holds its window (1) with
// m0 unacknowledged, so A waits unwritten in the outbox. A's max wait passes and it is
// spilled; the store writes A (seq s) but the answer is lost. Before the error comes back,
// a mailbox notice makes the sender read the mailbox: the read meets A at seq s, moves it
// to boxQ, and the cursor passes s. The spill's error must not drop A then (no read will
// return seq s again): the router, answered failed, queues A itself and sends B after it;
// the client must receive A before B, and both.
func TestSpillFailureKeepsAnEntryAMailboxReadMoved(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	base := env.store(t)
	ls := &lostAnswerAppendStore{Store: base, id: "A", appended: make(chan struct{}), release: make(chan struct{})}
	cfg := faultConfig(t, "sf-1")
	cfg.Window = 1
	n := startFaultNode(t, cfg, env.coord(t), ls)

	const id = "slow"
	cl, st := connectReady(t, n, id, testenv.MQTTOptions{CleanStart: true, ManualAck: true})
	answers := map[string]chan wire.Result{"m0": make(chan wire.Result, 1), "A": make(chan wire.Result, 1), "B": make(chan wire.Result, 1)}
	deliver := func(msgID string, maxWait uint32) {
		t.Helper()
		if !n.accept(st, wire.Deliver{Epoch: n.epoch.Load(), Client: id, Session: st.session, MaxWait: maxWait,
			Msgs: []wire.Msg{{ID: msgID, Topic: "inbox/" + id, Payload: []byte(msgID), QoS: 1, TTL: 60_000}}},
			func(_ int, r wire.Result) { answers[msgID] <- r }) {
			t.Fatalf("%s refused", msgID)
		}
	}
	deliver("m0", 60_000)
	m0, err := cl.Next(5 * time.Second)
	if err != nil || m0.ID != "m0" {
		t.Fatalf("m0: %v %q", err, m0.ID)
	}
	deliver("A", 200) // waits behind m0; spilled after 200ms
	<-ls.appended     // the store has A; its answer is still on the way

	n.askMailbox(st) // a mailbox notice (another router queued something, say)
	faultWaitFor(t, 5*time.Second, "the read met A and moved it to boxQ", func() bool {
		st.ob.mu.Lock()
		defer st.ob.mu.Unlock()
		e := st.ob.byID["A"]
		return e != nil && e.inBoxQ && !st.ob.reading && !st.ob.mailboxPending()
	})
	close(ls.release) // the lost answer: the spill fails
	if r := <-answers["A"]; r.Status != wire.StatusFailed {
		t.Fatalf("A answered %v, want failed (the test needs the failure path)", r.Status)
	}
	// The router queues A itself (recognised as a duplicate) and tells the node: 2xx.
	ctx := testenv.Context(t, 10*time.Second)
	res, err := n.teller.Queue(ctx, "", []store.Message{{ID: "A", To: id, Topic: "inbox/" + id, Payload: []byte("A"), QoS: 1,
		Accepted: time.Now().UTC(), TTL: time.Minute}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("router's queue of A: %v %v", err, res)
	}
	t.Logf("A accepted (queued, duplicate=%v); now B is sent", res[0].Duplicate)
	deliver("B", 60_000)
	if err := m0.Ack(); err != nil {
		t.Fatal(err)
	}
	var got []string
	deadline := time.After(5 * time.Second)
	for len(got) < 2 {
		select {
		case m := <-cl.Messages():
			got = append(got, m.ID)
			_ = m.Ack()
		case <-deadline:
			t.Fatalf("after m0 the client received %v (want [A B]): A, accepted before B was sent, was not delivered "+
				"(mailbox depth still %d)", got, mustDepth(t, base, id))
		}
	}
	if got[0] != "A" {
		t.Fatalf("received %v: B before A", got)
	}
}

func mustDepth(t *testing.T, s store.Store, id string) int {
	d, err := s.Depth(testenv.Context(t, 5*time.Second), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
