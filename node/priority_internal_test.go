package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
)

// TestHighLaneDrainsFirst: a connected client has five normal messages queued, two in
// flight (its window); a high-priority message queued then is written next, ahead of the
// three normal ones the node has read but not written, which follow in their order.
func TestHighLaneDrainsFirst(t *testing.T) {
	t.Parallel()
	s := newReceiptStore(nil)
	var st store.Store
	r := newReceiptRig(t, "pq-1", s, func(client string) {
		st = s.Store
		if _, ok := st.(store.Priorities); !ok {
			t.Fatalf("%T has no priority lanes", st)
		}
		var msgs []store.Message
		for i := range 5 {
			id := fmt.Sprintf("n%d", i)
			msgs = append(msgs, store.Message{ID: id, To: client, Topic: "inbox/" + client, Payload: []byte(id), QoS: 1, TTL: time.Minute})
		}
		if _, err := st.Append(testenv.Context(t, 5*time.Second), 100, msgs); err != nil {
			t.Fatal(err)
		}
	}, func(c *Config) { c.Window = 2 })
	if r.n.priorities == nil {
		t.Fatal("the node did not find the store's priority lanes")
	}
	n0, n1 := r.receive(t, "n0"), r.receive(t, "n1")
	_, err := st.Append(testenv.Context(t, 5*time.Second), 100, []store.Message{{
		ID: "h0", To: r.id, Topic: "inbox/" + r.id, Payload: []byte("h0"), QoS: 1, TTL: time.Minute, Priority: store.PriorityHigh,
	}})
	if err != nil {
		t.Fatal(err)
	}
	r.n.askMailbox(r.st) // what a mailbox notice does
	// The node reads the lanes before it writes again: wait until h0 is in its queue.
	faultWaitFor(t, 5*time.Second, "h0 read from the high lane", func() bool {
		o := r.st.ob
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.boxQ) > 0 && o.boxQ[0].id == "h0"
	})
	mustAck(t, n0)
	mustAck(t, n1)
	for _, want := range []string{"h0", "n2", "n3", "n4"} {
		mustAck(t, r.receive(t, want))
	}
}

// TestHighLaneInOrderPastOneRead: more high-priority messages are queued than one read
// takes, and normal ones behind them, with a window smaller than a read: every high one
// is written first, in order, and then the normal ones in theirs.
func TestHighLaneInOrderPastOneRead(t *testing.T) {
	t.Parallel()
	s := newReceiptStore(nil)
	var want []string
	r := newReceiptRig(t, "pq-2", s, func(client string) {
		var msgs []store.Message
		for i := range 4 {
			id := fmt.Sprintf("n%d", i)
			msgs = append(msgs, store.Message{ID: id, To: client, Topic: "inbox/" + client, Payload: []byte(id), QoS: 1, TTL: time.Minute})
		}
		for i := range 7 {
			id := fmt.Sprintf("h%d", i)
			want = append(want, id)
			msgs = append(msgs, store.Message{ID: id, To: client, Topic: "inbox/" + client, Payload: []byte(id), QoS: 1, TTL: time.Minute,
				Priority: store.PriorityHigh})
		}
		for i := range 4 {
			want = append(want, fmt.Sprintf("n%d", i))
		}
		if _, err := s.Store.Append(testenv.Context(t, 5*time.Second), 100, msgs); err != nil {
			t.Fatal(err)
		}
	}, func(c *Config) { c.Window, c.DrainBatch = 2, 3 })
	for _, id := range want {
		mustAck(t, r.receive(t, id))
	}
}
