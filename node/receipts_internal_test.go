package node

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

var errNotImplemented = errors.New("not implemented")

// receiptStore is a store that keeps receipts in memory, for the node's side of them: it
// records what Finish is given and what Append and Remove see, and can hold Finish back
// (gate) or fail it. The rest of store.Receipts is not the node's business.
type receiptStore struct {
	store.Store
	gate     chan struct{} // if set, Finish waits until it is closed (open)
	gateOnce sync.Once
	entered  chan []store.Receipt // if set, every Finish call sends its receipts here first
	failures atomic.Int64         // Finish fails this many more calls

	mu       sync.Mutex
	calls    int
	recorded []store.Receipt
	appended []store.Message
	removals map[string]bool // mailbox copies removed: whether their receipt was recorded before
}

var _ store.Receipts = (*receiptStore)(nil)

func newReceiptStore(base store.Store) *receiptStore {
	return &receiptStore{Store: base, removals: map[string]bool{}}
}

func (s *receiptStore) Finish(_ context.Context, rs ...store.Receipt) error {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	if s.entered != nil {
		s.entered <- slices.Clone(rs)
	}
	if s.gate != nil {
		<-s.gate // not the context: a retry would be a second call
	}
	if s.failures.Add(-1) >= 0 {
		return store.ErrUnavailable
	}
	s.mu.Lock()
	s.recorded = append(s.recorded, rs...)
	s.mu.Unlock()
	return nil
}

func (s *receiptStore) Append(ctx context.Context, limit int, msgs []store.Message) ([]store.AppendResult, error) {
	s.mu.Lock()
	s.appended = append(s.appended, msgs...)
	s.mu.Unlock()
	return s.Store.Append(ctx, limit, msgs)
}

func (s *receiptStore) Remove(ctx context.Context, items ...store.Removal) error {
	s.mu.Lock()
	for _, it := range items {
		for _, id := range it.IDs {
			s.removals[id] = s.isRecorded(id)
		}
	}
	s.mu.Unlock()
	return s.Store.Remove(ctx, items...)
}

// isRecorded reports whether a receipt of message id was recorded. s.mu is held.
func (s *receiptStore) isRecorded(id string) bool {
	return slices.ContainsFunc(s.recorded, func(r store.Receipt) bool { return r.ID == id })
}

func (s *receiptStore) recordedNow(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isRecorded(id)
}

// state returns copies of what the store saw.
func (s *receiptStore) state() (calls int, recorded []store.Receipt, appended []store.Message, removals map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	removals = map[string]bool{}
	for k, v := range s.removals {
		removals[k] = v
	}
	return s.calls, slices.Clone(s.recorded), slices.Clone(s.appended), removals
}

func (s *receiptStore) SweepReceipts(context.Context, store.SweepOptions) (int, error) {
	return 0, errNotImplemented
}

func (s *receiptStore) ReadReceipts(context.Context, string, int, time.Duration) ([]store.Receipt, error) {
	return nil, errNotImplemented
}

func (s *receiptStore) ReceiptsTail(context.Context) (string, error) { return "", errNotImplemented }

func (s *receiptStore) MessageState(context.Context, string, string) (store.MessageState, error) {
	return store.MessageState{}, errNotImplemented
}

func (s *receiptStore) Consumer(context.Context, string) (store.Consumer, error) {
	return store.Consumer{}, errNotImplemented
}

func (s *receiptStore) SetConsumer(context.Context, string, string, store.Consumer) error {
	return errNotImplemented
}

func (s *receiptStore) ClaimConsumer(context.Context, string, string, time.Duration) (bool, error) {
	return false, errNotImplemented
}

// receiptRig is one node on a receiptStore and one connected, subscribed client, which
// acknowledges only when told to.
type receiptRig struct {
	n  *Node
	s  *receiptStore
	cl *testenv.MQTTClient
	st *clientState
	id string
	// answers has each direct message's answer, with whether its receipt was recorded
	// when it was sent.
	answers chan answer
	count   atomic.Int64 // answers sent
}

type answer struct {
	id       string
	r        wire.Result
	recorded bool
}

// newReceiptRig starts the node; before (if set) is called with the client's id before the
// client connects (to fill its mailbox, say), tune (if set) with the node's config.
func newReceiptRig(t *testing.T, nodeID string, s *receiptStore, before func(client string), tune func(*Config)) *receiptRig {
	t.Helper()
	env := newFaultEnv(t)
	s.Store = env.store(t)
	r := &receiptRig{s: s, id: "dev-" + nodeID, answers: make(chan answer, 16)}
	if before != nil {
		before(r.id)
	}
	cfg := faultConfig(t, nodeID)
	if tune != nil {
		tune(&cfg)
	}
	r.n = startFaultNode(t, cfg, env.coord(t), s)
	if s.gate != nil {
		// Before the node's Close (cleanups run last first), which would wait for Finish.
		t.Cleanup(s.open)
	}
	r.cl = testenv.ConnectMQTT(t, r.n.Member().MQTTAddr, r.id, testenv.MQTTOptions{CleanStart: true, ManualAck: true})
	if err := r.cl.Subscribe("inbox/"+r.id, 1); err != nil {
		t.Fatal(err)
	}
	faultWaitFor(t, 5*time.Second, "client ready", func() bool {
		r.st = r.n.clients.get(r.id)
		return r.st != nil && r.st.ready.Load() && r.n.blocked(r.st) == ""
	})
	return r
}

// open lets Finish calls return.
func (s *receiptStore) open() { s.gateOnce.Do(func() { close(s.gate) }) }

// deliver hands the node msgs as one router's Deliver.
func (r *receiptRig) deliver(t *testing.T, maxWait uint32, msgs ...wire.Msg) {
	t.Helper()
	for i := range msgs {
		msgs[i].Topic, msgs[i].Payload = "inbox/"+r.id, []byte(msgs[i].ID)
		if msgs[i].TTL == 0 {
			msgs[i].TTL = 60_000
		}
	}
	ok := r.n.accept(r.st, wire.Deliver{Epoch: r.n.epoch.Load(), Client: r.id, Session: r.st.session, MaxWait: maxWait, Msgs: msgs},
		func(i int, res wire.Result) {
			r.count.Add(1)
			r.answers <- answer{id: msgs[i].ID, r: res, recorded: r.s.recordedNow(msgs[i].ID)}
		})
	if !ok {
		t.Fatal("the outbox refused the delivery")
	}
}

// receive returns the next message the client receives, unacknowledged.
func (r *receiptRig) receive(t *testing.T, id string) testenv.Msg {
	t.Helper()
	m, err := r.cl.Next(5 * time.Second)
	if err != nil || m.ID != id {
		t.Fatalf("received %q, %v; want %q", m.ID, err, id)
	}
	return m
}

func (r *receiptRig) answer(t *testing.T) answer {
	t.Helper()
	select {
	case a := <-r.answers:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to the router")
		return answer{}
	}
}

func mustAck(t *testing.T, m testenv.Msg) {
	t.Helper()
	if err := m.Ack(); err != nil {
		t.Fatal(err)
	}
}

func entered(t *testing.T, s *receiptStore) []store.Receipt {
	t.Helper()
	select {
	case rs := <-s.entered:
		return rs
	case <-time.After(10 * time.Second):
		t.Fatal("no Finish call")
		return nil
	}
}

// TestReceiptBeforeAnswer: a direct message that asked for a receipt and is acknowledged
// gets one delivered receipt, recorded by this node as its own (not only if pending), and
// the router's answer waits until Finish has returned.
func TestReceiptBeforeAnswer(t *testing.T) {
	t.Parallel()
	s := newReceiptStore(nil)
	s.gate, s.entered = make(chan struct{}), make(chan []store.Receipt, 8)
	r := newReceiptRig(t, "rc-1", s, nil, nil)

	r.deliver(t, 60_000, wire.Msg{ID: "r1", QoS: 1, Receipt: true})
	mustAck(t, r.receive(t, "r1"))
	rs := entered(t, s)
	want := store.Receipt{Client: r.id, ID: "r1", Status: store.ReceiptDelivered, Node: "rc-1", Attempts: 1}
	if len(rs) != 1 || rs[0] != want {
		t.Fatalf("Finish(%+v), want Finish(%+v)", rs, want)
	}
	select {
	case a := <-r.answers:
		t.Fatalf("answered %+v while Finish had not returned", a)
	default:
	}
	s.open()
	if a := r.answer(t); a.r.Status != wire.StatusDelivered || !a.recorded {
		t.Fatalf("answer %+v; want delivered, after its receipt was recorded", a)
	}
	if calls, recorded, _, _ := s.state(); calls != 1 || len(recorded) != 1 {
		t.Fatalf("%d Finish calls recorded %+v; want one receipt in one call", calls, recorded)
	}
}

// TestReceiptOfAMailboxMessage: a message read from the mailbox (its sender's wish is not
// known here) is acknowledged: its receipt is recorded only if pending, and its mailbox
// copy is removed only after Finish returned.
func TestReceiptOfAMailboxMessage(t *testing.T) {
	t.Parallel()
	s := newReceiptStore(nil)
	s.gate, s.entered = make(chan struct{}), make(chan []store.Receipt, 8)
	r := newReceiptRig(t, "rc-2", s, func(client string) {
		res, err := s.Store.Append(testenv.Context(t, 5*time.Second), 100, []store.Message{{
			ID: "box-1", To: client, Topic: "inbox/" + client, Payload: []byte("box-1"), QoS: 1, TTL: time.Minute, Receipt: true,
		}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("append: %v %+v", err, res)
		}
	}, nil)

	mustAck(t, r.receive(t, "box-1"))
	rs := entered(t, s)
	want := store.Receipt{Client: r.id, ID: "box-1", Status: store.ReceiptDelivered, Node: "rc-2", Attempts: 1, OnlyPending: true}
	if len(rs) != 1 || rs[0] != want {
		t.Fatalf("Finish(%+v), want Finish(%+v)", rs, want)
	}
	if _, _, _, removals := s.state(); len(removals) != 0 {
		t.Fatalf("mailbox copies %v removed while Finish had not returned", removals)
	}
	s.open()
	faultWaitFor(t, 5*time.Second, "the mailbox copy removed", func() bool { return mustDepth(t, s.Store, r.id) == 0 })
	if _, _, _, removals := s.state(); !removals["box-1"] {
		t.Fatalf("removals %v: box-1 was removed before its receipt was recorded", removals)
	}
}

// TestNoReceiptUnasked: a direct message that did not ask for a receipt gets none; one
// that did, right after it, gets its own only.
func TestNoReceiptUnasked(t *testing.T) {
	t.Parallel()
	s := newReceiptStore(nil)
	r := newReceiptRig(t, "rc-3", s, nil, nil)

	r.deliver(t, 60_000, wire.Msg{ID: "plain", QoS: 1})
	mustAck(t, r.receive(t, "plain"))
	if a := r.answer(t); a.r.Status != wire.StatusDelivered {
		t.Fatalf("plain answered %+v", a)
	}
	// With receipts the answer waits for Finish: none has been called, none will be.
	if calls, _, _, _ := s.state(); calls != 0 {
		t.Fatalf("%d Finish calls for a message that asked for no receipt", calls)
	}
	r.deliver(t, 60_000, wire.Msg{ID: "asked", QoS: 0, Receipt: true})
	r.receive(t, "asked") // QoS 0: delivered once written
	if a := r.answer(t); a.r.Status != wire.StatusDelivered || !a.recorded {
		t.Fatalf("asked answered %+v", a)
	}
	_, recorded, _, _ := s.state()
	want := []store.Receipt{{Client: r.id, ID: "asked", Status: store.ReceiptDelivered, Node: "rc-3", Attempts: 1}}
	if !slices.Equal(recorded, want) {
		t.Fatalf("recorded %+v, want %+v", recorded, want)
	}
}

// TestReceiptRetried: Finish fails three times, then works: one receipt, one answer.
func TestReceiptRetried(t *testing.T) {
	t.Parallel()
	s := newReceiptStore(nil)
	s.failures.Store(3)
	r := newReceiptRig(t, "rc-4", s, nil, nil)

	r.deliver(t, 60_000, wire.Msg{ID: "r1", QoS: 1, Receipt: true})
	mustAck(t, r.receive(t, "r1"))
	// The first failure sends the answer: delivery does not wait for a failing store.
	if a := r.answer(t); a.r.Status != wire.StatusDelivered || a.recorded {
		t.Fatalf("answer %+v; want delivered, before its receipt was recorded", a)
	}
	faultWaitFor(t, 10*time.Second, "r1's receipt recorded", func() bool {
		_, recorded, _, _ := s.state()
		return len(recorded) == 1
	})
	if err := r.n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls, recorded, _, _ := s.state()
	if calls != 4 || len(recorded) != 1 || recorded[0].ID != "r1" {
		t.Fatalf("%d Finish calls recorded %+v; want 4 calls, the last recording r1", calls, recorded)
	}
	if c := r.count.Load(); c != 1 {
		t.Fatalf("the router was answered %d times", c)
	}
}

// TestReceiptNeverRecordedSettlesNothing: Finish keeps failing until the node stops: the
// router is answered all the same (delivery does not wait for the store), but the mailbox
// copy stays, so the mailbox message is delivered again and its receipt recorded then.
func TestReceiptNeverRecordedSettlesNothing(t *testing.T) {
	t.Parallel()
	s := newReceiptStore(nil)
	s.entered = make(chan []store.Receipt, 64)
	s.failures.Store(1 << 40)
	r := newReceiptRig(t, "rc-5", s, func(client string) {
		_, err := s.Store.Append(testenv.Context(t, 5*time.Second), 100, []store.Message{{
			ID: "box-1", To: client, Topic: "inbox/" + client, Payload: []byte("box-1"), QoS: 1, TTL: time.Minute,
		}})
		if err != nil {
			t.Fatal(err)
		}
	}, func(c *Config) {
		c.StoreTimeout = 200 * time.Millisecond // Close waits two for receipts that never come
	})
	mustAck(t, r.receive(t, "box-1"))
	entered(t, s)
	r.deliver(t, 60_000, wire.Msg{ID: "r1", QoS: 1, Receipt: true})
	mustAck(t, r.receive(t, "r1"))
	// Unacknowledged at the stop, r1 would be queued in the mailbox and answered so.
	faultWaitFor(t, 5*time.Second, "r1's receipt queued", func() bool {
		q := r.n.receipter
		q.mu.Lock()
		defer q.mu.Unlock()
		return slices.ContainsFunc(q.queue, func(it receiptItem) bool { return it.r.ID == "r1" })
	})
	if err := r.n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := r.count.Load(); c != 1 {
		t.Fatalf("the router was answered %d times; want once, though the receipt failed", c)
	}
	if _, _, _, removals := s.state(); len(removals) != 0 {
		t.Fatalf("mailbox copies %v removed without a receipt", removals)
	}
	if d := mustDepth(t, s.Store, r.id); d != 1 {
		t.Fatalf("mailbox depth %d, want 1", d)
	}
}

// TestSpillRegistersReceipts: direct messages not acknowledged within their max wait go
// to the mailbox with their receipt flag, so the store registers those that asked; once
// acknowledged, the one that asked gets its receipt before its copy is removed.
func TestSpillRegistersReceipts(t *testing.T) {
	t.Parallel()
	s := newReceiptStore(nil)
	r := newReceiptRig(t, "rc-6", s, nil, nil)

	r.deliver(t, 100, wire.Msg{ID: "asked", QoS: 1, Receipt: true}, wire.Msg{ID: "plain", QoS: 1})
	m1, m2 := r.receive(t, "asked"), r.receive(t, "plain")
	for range 2 {
		if a := r.answer(t); a.r.Status != wire.StatusQueued {
			t.Fatalf("%s answered %+v, want queued", a.id, a)
		}
	}
	_, _, appended, _ := s.state()
	flags := map[string]bool{}
	for _, m := range appended {
		flags[m.ID] = m.Receipt
	}
	if len(flags) != 2 || !flags["asked"] || flags["plain"] {
		t.Fatalf("appended receipt flags %v, want asked true and plain false", flags)
	}
	mustAck(t, m1)
	mustAck(t, m2)
	faultWaitFor(t, 5*time.Second, "the mailbox copies removed", func() bool { return mustDepth(t, s.Store, r.id) == 0 })
	_, recorded, _, removals := s.state()
	want := []store.Receipt{{Client: r.id, ID: "asked", Status: store.ReceiptDelivered, Node: "rc-6", Attempts: 1}}
	if !slices.Equal(recorded, want) {
		t.Fatalf("recorded %+v, want %+v", recorded, want)
	}
	if !removals["asked"] {
		t.Fatalf("removals %v: asked was removed before its receipt was recorded", removals)
	}
}

// TestReceiptOfAnErrorAck: a PUBACK with an error reason code still ends the message
// delivered (the client has it), with the code in the receipt.
func TestReceiptOfAnErrorAck(t *testing.T) {
	t.Parallel()
	s := newReceiptStore(nil)
	r := newReceiptRig(t, "rc-7", s, nil, nil)

	r.deliver(t, 60_000, wire.Msg{ID: "r1", QoS: 1, Receipt: true})
	r.receive(t, "r1") // never acknowledged by the client: the test sends its PUBACK
	o := r.st.ob
	o.mu.Lock()
	var pid uint16
	for p, e := range o.pids.directed {
		if e.id == "r1" {
			pid = p
		}
	}
	o.mu.Unlock()
	if pid == 0 || !r.n.acked(r.st, pid, 0x87) {
		t.Fatalf("r1 is not in flight (packet id %d)", pid)
	}
	if a := r.answer(t); a.r.Status != wire.StatusDelivered || !a.recorded {
		t.Fatalf("answer %+v; want delivered, after its receipt was recorded", a)
	}
	_, recorded, _, _ := s.state()
	if len(recorded) != 1 || recorded[0].Status != store.ReceiptDelivered || !strings.Contains(recorded[0].Detail, "0x87") {
		t.Fatalf("recorded %+v; want delivered, with reason code 0x87 in its detail", recorded)
	}
}

// TestReceiptOfAnExpiredMessage: a direct message that expires waiting behind another
// (the window is 1) ends expired, never written, with its receipt before its answer.
func TestReceiptOfAnExpiredMessage(t *testing.T) {
	t.Parallel()
	s := newReceiptStore(nil)
	r := newReceiptRig(t, "rc-8", s, nil, func(c *Config) { c.Window = 1 })

	r.deliver(t, 60_000, wire.Msg{ID: "first", QoS: 1})
	m := r.receive(t, "first")
	r.deliver(t, 60_000, wire.Msg{ID: "late", QoS: 1, TTL: 50, Receipt: true})
	var expiry time.Time
	r.st.ob.mu.Lock()
	if e := r.st.ob.byID["late"]; e != nil {
		expiry = e.expires
	}
	r.st.ob.mu.Unlock()
	faultWaitFor(t, 5*time.Second, "late expired", func() bool { return time.Now().After(expiry) })
	mustAck(t, m) // the window opens: the sender finds late expired
	var got []answer
	for range 2 {
		got = append(got, r.answer(t))
	}
	slices.SortFunc(got, func(a, b answer) int { return strings.Compare(a.id, b.id) })
	if got[1].id != "late" || got[1].r.Status != wire.StatusExpired || !got[1].recorded {
		t.Fatalf("late answered %+v; want expired, after its receipt was recorded", got[1])
	}
	_, recorded, _, _ := s.state()
	want := []store.Receipt{{Client: r.id, ID: "late", Status: store.ReceiptExpired, Node: "rc-8", Detail: "expired before delivery"}}
	if !slices.Equal(recorded, want) {
		t.Fatalf("recorded %+v, want %+v", recorded, want)
	}
}

// TestReceiptOfAMessageExpiredOnArrival: a message whose TTL ran out on its way to the node
// never becomes an entry, but is still answered expired only after its receipt.
func TestReceiptOfAMessageExpiredOnArrival(t *testing.T) {
	t.Parallel()
	s := newReceiptStore(nil)
	r := newReceiptRig(t, "rc-9", s, nil, nil)

	r.deliver(t, 60_000, wire.Msg{ID: "gone", QoS: 1, TTL: -1, Receipt: true}, wire.Msg{ID: "gone-plain", QoS: 1, TTL: -1})
	for range 2 {
		if a := r.answer(t); a.r.Status != wire.StatusExpired || a.recorded != (a.id == "gone") {
			t.Fatalf("answer %+v; want expired, after its receipt was recorded if it asked for one", a)
		}
	}
	_, recorded, _, _ := s.state()
	if len(recorded) != 1 || recorded[0].ID != "gone" || recorded[0].Status != store.ReceiptExpired || recorded[0].Attempts != 0 {
		t.Fatalf("recorded %+v; want one expired receipt for gone, never written", recorded)
	}
}

// PeekHigh passes the wrapped store's high lane through, when it has one.
func (s *receiptStore) PeekHigh(ctx context.Context, client string, after uint64, n int) ([]store.Message, error) {
	p, ok := s.Store.(store.Priorities)
	if !ok {
		return nil, errNotImplemented
	}
	return p.PeekHigh(ctx, client, after, n)
}
