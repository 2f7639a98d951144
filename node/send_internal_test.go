package node

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// TestWakeIdleStartsNoSender: a wake with nothing queued and no mailbox read owed (the
// PUBACK of a client with nothing more to get, most of them under load) starts no sender;
// one with something queued does.
func TestWakeIdleStartsNoSender(t *testing.T) {
	t.Parallel()
	n := &Node{}
	st := newClientState("c1", nil, "s1")
	o := st.ob
	o.readGen = o.askGen // the mailbox has been read

	n.wake(st)
	o.mu.Lock()
	sending := o.sending
	o.mu.Unlock()
	if sending {
		t.Fatal("wake started a sender for an outbox with nothing to do")
	}

	for _, tc := range []struct {
		name string
		set  func()
	}{
		{"a direct message queued", func() { o.directQ = []*entry{{id: "m1"}} }},
		{"a mailbox read owed", func() { o.askGen++ }},
	} {
		o.mu.Lock()
		o.directQ, o.readGen = nil, o.askGen
		tc.set()
		o.mu.Unlock()
		n.wake(st)
		o.mu.Lock()
		idle := o.idle()
		o.mu.Unlock()
		if idle {
			t.Fatalf("%s: the outbox reports idle", tc.name)
		}
		// The sender it started finds the node not live and exits.
		n.sendWG.Wait()
		o.mu.Lock()
		sending = o.sending
		o.mu.Unlock()
		if sending {
			t.Fatalf("%s: the sender did not exit", tc.name)
		}
	}
}

// connectReady connects id to n as an MQTT 5 client subscribed to its inbox and waits
// until the node may send to it.
func connectReady(t *testing.T, n *Node, id string, o testenv.MQTTOptions) (*testenv.MQTTClient, *clientState) {
	t.Helper()
	cl := testenv.ConnectMQTT(t, n.Member().MQTTAddr, id, o)
	if err := cl.Subscribe("inbox/"+id, 1); err != nil {
		t.Fatal(err)
	}
	var st *clientState
	faultWaitFor(t, 5*time.Second, "client ready with a valid lease", func() bool {
		st = n.clients.get(id)
		return st != nil && st.ready.Load() && n.blocked(st) == ""
	})
	return cl, st
}

// answerLog collects a Deliver's answers by message index.
type answerLog struct {
	mu  sync.Mutex
	got map[int][]wire.Result
}

func (a *answerLog) reply(i int, r wire.Result) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.got == nil {
		a.got = map[int][]wire.Result{}
	}
	a.got[i] = append(a.got[i], r)
}

func (a *answerLog) of(i int) []wire.Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.got[i])
}

// senderIdle waits until st's sender has exited.
func senderIdle(t *testing.T, st *clientState) {
	t.Helper()
	faultWaitFor(t, 5*time.Second, "the sender exited", func() bool {
		st.ob.mu.Lock()
		defer st.ob.mu.Unlock()
		return !st.ob.sending
	})
}

// TestTooLargeSettledWhenTheWriteIsBlocked: a batch holds a message too large for the
// client's Maximum Packet Size and one that fits; by the time the sender holds mochi's
// client lock the client is no longer subscribed to its inbox, so the write is refused
// (errBlocked). The one that fits goes back to its queue and is delivered, once, when the
// client subscribes again; the too-large one is answered rejected at once and gives back
// its window slot and packet id (left taken, they would stay taken, and its router
// unanswered, until the connection ended).
func TestTooLargeSettledWhenTheWriteIsBlocked(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	n := startFaultNode(t, faultConfig(t, "big-1"), env.coord(t), env.store(t))
	const id = "small-packets"
	cl, st := connectReady(t, n, id, testenv.MQTTOptions{CleanStart: true, MaximumPacketSize: 512})
	o := st.ob

	// mochi holds the client lock while it writes one of its own packets.
	st.cl.Lock()
	locked := true
	defer func() {
		if locked {
			st.cl.Unlock()
		}
	}()
	var answers answerLog
	if !n.accept(st, wire.Deliver{
		Epoch: n.epoch.Load(), Client: id, Session: st.session, MaxWait: 60_000,
		Msgs: []wire.Msg{
			{ID: "big", Topic: "inbox/" + id, Payload: bytes.Repeat([]byte("b"), 2048), QoS: 1, TTL: 60_000},
			{ID: "fits", Topic: "inbox/" + id, Payload: []byte("fits"), QoS: 1, TTL: 60_000},
		},
	}, answers.reply) {
		t.Fatal("accept refused")
	}
	faultWaitFor(t, 5*time.Second, "the sender took both", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		big, fits := o.byID["big"], o.byID["fits"]
		return big != nil && fits != nil && big.state == entryWritten && fits.state == entryWritten
	})
	// The client unsubscribes from its inbox (updateReady) while the sender waits.
	st.ready.Store(false)
	st.cl.Unlock()
	locked = false

	faultWaitFor(t, 5*time.Second, "the too-large message answered", func() bool { return len(answers.of(0)) > 0 })
	senderIdle(t, st)
	if a := answers.of(0); len(a) != 1 || a[0].Status != wire.StatusRejected {
		t.Fatalf("the too-large message was answered %+v, want rejected once", a)
	}
	o.mu.Lock()
	window, inFlight := o.window, len(o.pids.directed)
	fits := o.byID["fits"]
	fitsState, queued := fits.state, slices.Clone(o.directQ)
	o.mu.Unlock()
	if window != 0 || inFlight != 0 {
		t.Fatalf("after the refused write: window %d, %d packet ids held; want 0 and 0", window, inFlight)
	}
	if fitsState != entryQueued || len(queued) != 1 || queued[0] != fits {
		t.Fatalf("the message that fits is %v, queue %d long; want it queued alone", fitsState, len(queued))
	}
	if a := answers.of(1); len(a) != 0 {
		t.Fatalf("the message that fits was answered %+v before it was written", a)
	}

	n.updateReady(st) // subscribed again: the sender is woken
	m, err := cl.Next(5 * time.Second)
	if err != nil || m.ID != "fits" {
		t.Fatalf("received %q, %v; want the message that fits", m.ID, err)
	}
	faultWaitFor(t, 5*time.Second, "the message that fits answered", func() bool { return len(answers.of(1)) > 0 })
	if a := answers.of(1); len(a) != 1 || a[0].Status != wire.StatusDelivered {
		t.Fatalf("the message that fits was answered %+v, want delivered once", a)
	}
	if m, err := cl.Next(300 * time.Millisecond); err == nil {
		t.Fatalf("received %q again (or the too-large one)", m.ID)
	}
	o.mu.Lock()
	window, inFlight = o.window, len(o.pids.directed)
	o.mu.Unlock()
	if window != 0 || inFlight != 0 {
		t.Fatalf("after the acknowledgement: window %d, %d packet ids held; want 0 and 0", window, inFlight)
	}
}

// TestBatchBackWhenNoPacketIDIsFree: the sender takes a batch of three and finds a packet
// id for the first only (every other id held, which the window and mochi's inflight
// limit prevent in practice). The batch goes back to its queue, in order, with its window
// slots, and the id the first took is free again; the third, which the search never
// reached and which still names an id another message holds (left by an earlier
// attempt), does not take that message's id away. When ids are free again all three are
// delivered, in order, once.
func TestBatchBackWhenNoPacketIDIsFree(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	n := startFaultNode(t, faultConfig(t, "pid-1"), env.coord(t), env.store(t))
	const id = "no-ids"
	cl, st := connectReady(t, n, id, testenv.MQTTOptions{CleanStart: true})
	o := st.ob

	// Not subscribed to its inbox for a moment: the messages wait in the queue.
	st.ready.Store(false)
	var answers answerLog
	ids := []string{"m1", "m2", "m3"}
	var msgs []wire.Msg
	for _, mid := range ids {
		msgs = append(msgs, wire.Msg{ID: mid, Topic: "inbox/" + id, Payload: []byte(mid), QoS: 1, TTL: 60_000})
	}
	if !n.accept(st, wire.Deliver{Epoch: n.epoch.Load(), Client: id, Session: st.session, MaxWait: 60_000, Msgs: msgs},
		answers.reply) {
		t.Fatal("accept refused")
	}
	senderIdle(t, st)

	// Every id but one held by another message in flight; m3 still names one of them.
	held := &entry{id: "held elsewhere", qos: 1, state: entryWritten}
	o.mu.Lock()
	free := o.pids.next + 1
	if free == 0 {
		free = 1
	}
	if o.pids.directed == nil {
		o.pids.directed = map[uint16]*entry{}
	}
	for pid := 1; pid <= 65535; pid++ {
		if p := uint16(pid); p != free && !o.pids.used(p) {
			o.pids.directed[p] = held
		}
	}
	stale := free + 1
	if stale == 0 {
		stale = 1
	}
	o.byID["m3"].pid = stale
	o.mu.Unlock()

	n.updateReady(st) // subscribed again: the sender is woken, and runs out of ids
	senderIdle(t, st)
	o.mu.Lock()
	var queued []string
	for _, e := range o.directQ {
		queued = append(queued, e.id)
		if e.state != entryQueued || e.writes != 0 {
			t.Errorf("%s is %v, written %d times; want queued, never written", e.id, e.state, e.writes)
		}
	}
	window, freed, kept := o.window, o.pids.directed[free] == nil, o.pids.directed[stale] == held
	tried := o.pids.next == free // the first took it; the search for the second went round
	o.mu.Unlock()
	if !tried {
		t.Fatal("the sender did not try to write the batch")
	}
	if !slices.Equal(queued, ids) || window != 0 {
		t.Fatalf("after the failed attempt: queue %v, window %d; want %v and 0", queued, window, ids)
	}
	if !freed || !kept {
		t.Fatalf("after the failed attempt: the first one's id free %v, the other message's id still its own %v; want both",
			freed, kept)
	}
	for i := range ids {
		if a := answers.of(i); len(a) != 0 {
			t.Fatalf("%s answered %+v before it was written", ids[i], a)
		}
	}

	// The messages in flight are acknowledged: every id is free again.
	o.mu.Lock()
	for pid, e := range o.pids.directed {
		if e == held {
			delete(o.pids.directed, pid)
		}
	}
	o.mu.Unlock()
	n.wake(st)
	for _, want := range ids {
		m, err := cl.Next(5 * time.Second)
		if err != nil || m.ID != want {
			t.Fatalf("received %q, %v; want %s", m.ID, err, want)
		}
	}
	faultWaitFor(t, 5*time.Second, "all three answered", func() bool {
		for i := range ids {
			if len(answers.of(i)) == 0 {
				return false
			}
		}
		return true
	})
	for i := range ids {
		if a := answers.of(i); len(a) != 1 || a[0].Status != wire.StatusDelivered {
			t.Fatalf("%s answered %+v, want delivered once", ids[i], a)
		}
	}
	if m, err := cl.Next(300 * time.Millisecond); err == nil {
		t.Fatalf("received %q again", m.ID)
	}
}

// TestDirectedMessagesCarryTheSubscriptionIdentifier: a directed message carries the
// Subscription Identifier of the inbox subscription it matches [MQTT-3.3.4-3], as a publish
// through mochi does; once the client subscribes again without one, it carries none.
func TestDirectedMessagesCarryTheSubscriptionIdentifier(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	n := startFaultNode(t, faultConfig(t, "subid-1"), env.coord(t), env.store(t))
	const id = "dev-subid"
	cl := testenv.ConnectMQTT(t, n.Member().MQTTAddr, id, testenv.MQTTOptions{CleanStart: true})
	var st *clientState
	for i, want := range []int{42, 0} {
		if err := cl.SubscribeID(paho.SubscribeOptions{Topic: "inbox/" + id, QoS: 1}, want); err != nil {
			t.Fatal(err)
		}
		faultWaitFor(t, 5*time.Second, "client ready", func() bool {
			st = n.clients.get(id)
			return st != nil && st.ready.Load() && n.blocked(st) == ""
		})
		mid := fmt.Sprintf("m%d", i)
		var answers answerLog
		if !n.accept(st, wire.Deliver{Epoch: n.epoch.Load(), Client: id, Session: st.session, MaxWait: 60_000,
			Msgs: []wire.Msg{{ID: mid, Topic: "inbox/" + id, Payload: []byte(mid), QoS: 1, TTL: 60_000}}}, answers.reply) {
			t.Fatal("accept refused")
		}
		m, err := cl.Next(5 * time.Second)
		if err != nil || m.ID != mid {
			t.Fatalf("received %q, %v; want %s", m.ID, err, mid)
		}
		got := 0
		if m.Props != nil && m.Props.SubscriptionIdentifier != nil {
			got = *m.Props.SubscriptionIdentifier
		}
		if got != want {
			t.Errorf("directed message %s came with subscription identifier %d, want %d", mid, got, want)
		}
	}
}
