package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/switchboard-mqtt/switchboard/store"
)

func keyed(client, id, key string, limit int) store.Message {
	m := NewMessage(client, id)
	m.CollapseKey, m.CollapseLimit = key, limit
	return m
}

func mailboxIDs(t *testing.T, st store.Store, client string) []string {
	t.Helper()
	msgs, err := st.Peek(ctxT(t), client, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	return ids
}

// testCollapseReplaces: a message with a collapse key replaces the queued one with the
// same key, goes at the tail, and the replaced one's receipt says collapsed.
func testCollapseReplaces(t *testing.T, st store.Store) {
	ctx := ctxT(t)
	first := keyed("alice", "a1", "score", 10)
	first.Receipt = true
	if _, err := st.Append(ctx, 10, []store.Message{first, NewMessage("alice", "a2")}); err != nil {
		t.Fatal(err)
	}
	res, err := st.Append(ctx, 10, []store.Message{keyed("alice", "a3", "score", 10)})
	if err != nil || res[0].Err != nil {
		t.Fatalf("append a3: %v %v", res, err)
	}
	if res[0].Collapsed != "a1" || res[0].Depth != 2 {
		t.Fatalf("a3: collapsed %q, depth %d; want a1, 2", res[0].Collapsed, res[0].Depth)
	}
	if got := mailboxIDs(t, st, "alice"); !slices.Equal(got, []string{"a2", "a3"}) {
		t.Fatalf("mailbox %v, want [a2 a3]", got)
	}
	if d, err := st.Depth(ctx, "alice"); err != nil || d != 2 {
		t.Fatalf("depth %d, %v", d, err)
	}
	// A retry of a3 is a duplicate and replaces nothing.
	res, err = st.Append(ctx, 10, []store.Message{keyed("alice", "a3", "score", 10)})
	if err != nil || !res[0].Duplicate || res[0].Collapsed != "" {
		t.Fatalf("retry of a3: %+v, %v", res, err)
	}
	s, err := receiptsOf(t, st).MessageState(ctx, "alice", "a1")
	if err != nil || s.Pending || s.Receipt.Status != store.ReceiptCollapsed {
		t.Fatalf("state of the replaced message: %+v, %v; want collapsed", s, err)
	}
	// Two with one key in one Append: the second stays.
	res, err = st.Append(ctx, 10, []store.Message{keyed("bob", "b1", "k", 10), keyed("bob", "b2", "k", 10)})
	if err != nil || res[1].Collapsed != "b1" {
		t.Fatalf("one append, one key: %+v, %v", res, err)
	}
	if got := mailboxIDs(t, st, "bob"); !slices.Equal(got, []string{"b2"}) {
		t.Fatalf("bob's mailbox %v, want [b2]", got)
	}
}

// testCollapseFullMailbox: a full mailbox takes a message that replaces one in it.
func testCollapseFullMailbox(t *testing.T, st store.Store) {
	ctx := ctxT(t)
	if _, err := st.Append(ctx, 2, []store.Message{keyed("carol", "c1", "k", 0), NewMessage("carol", "c2")}); err != nil {
		t.Fatal(err)
	}
	res, err := st.Append(ctx, 2, []store.Message{NewMessage("carol", "c3"), keyed("carol", "c4", "k", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, store.ErrMailboxFull) || res[1].Err != nil || res[1].Collapsed != "c1" {
		t.Fatalf("full mailbox: %+v", res)
	}
	if got := mailboxIDs(t, st, "carol"); !slices.Equal(got, []string{"c2", "c4"}) {
		t.Fatalf("mailbox %v, want [c2 c4]", got)
	}
}

// testCollapseKeyLimit: a new key past the limit is refused; a key whose message left
// the mailbox no longer counts.
func testCollapseKeyLimit(t *testing.T, st store.Store) {
	ctx := ctxT(t)
	res, err := st.Append(ctx, 10, []store.Message{keyed("dave", "d1", "k1", 2), keyed("dave", "d2", "k2", 2), keyed("dave", "d3", "k3", 2)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[1].Err != nil || !errors.Is(res[2].Err, store.ErrTooManyCollapseKeys) {
		t.Fatalf("third key past a limit of two: %+v", res)
	}
	// An existing key still replaces at the limit.
	res, err = st.Append(ctx, 10, []store.Message{keyed("dave", "d4", "k2", 2)})
	if err != nil || res[0].Err != nil || res[0].Collapsed != "d2" {
		t.Fatalf("known key at the limit: %+v, %v", res, err)
	}
	if err := st.Remove(ctx, store.Removal{Client: "dave", IDs: []string{"d1"}}); err != nil {
		t.Fatal(err)
	}
	res, err = st.Append(ctx, 10, []store.Message{keyed("dave", "d5", "k3", 2)})
	if err != nil || res[0].Err != nil {
		t.Fatalf("a new key once another's message left: %+v, %v", res, err)
	}
	if got := mailboxIDs(t, st, "dave"); !slices.Equal(got, []string{"d4", "d5"}) {
		t.Fatalf("mailbox %v, want [d4 d5]", got)
	}
	// Keys are per client.
	res, err = st.Append(ctx, 10, []store.Message{keyed("erin", "e1", "k1", 1)})
	if err != nil || res[0].Err != nil {
		t.Fatalf("another client's first key: %+v, %v", res, err)
	}
}

// testCollapseReusedID: a key names the message that came with it, not its id: once that
// message left, the same id sent again without the key is not replaced by the key's next
// message.
func testCollapseReusedID(t *testing.T, st store.Store) {
	ctx := ctxT(t)
	if _, err := st.Append(ctx, 10, []store.Message{keyed("fay", "a1", "K", 0)}); err != nil {
		t.Fatal(err)
	}
	if err := st.Remove(ctx, store.Removal{Client: "fay", IDs: []string{"a1"}}); err != nil {
		t.Fatal(err)
	}
	again := NewMessage("fay", "a1") // the id again, another message, no key
	again.Receipt = true
	if _, err := st.Append(ctx, 10, []store.Message{again}); err != nil {
		t.Fatal(err)
	}
	res, err := st.Append(ctx, 10, []store.Message{keyed("fay", "b1", "K", 0)})
	if err != nil || res[0].Err != nil || res[0].Collapsed != "" {
		t.Fatalf("b1 after a1 was sent again without the key: %+v, %v; want nothing replaced", res, err)
	}
	if got := mailboxIDs(t, st, "fay"); !slices.Equal(got, []string{"a1", "b1"}) {
		t.Fatalf("mailbox %v, want [a1 b1]", got)
	}
	if s, err := receiptsOf(t, st).MessageState(ctx, "fay", "a1"); err != nil || !s.Pending {
		t.Fatalf("a1 sent again: %+v, %v; want pending", s, err)
	}
}

// testCollapseReplacedThenResent: within one Append, a message replaced by an earlier one
// of the call and then sent again is a new message (never a duplicate of what is gone).
func testCollapseReplacedThenResent(t *testing.T, st store.Store) {
	ctx := ctxT(t)
	if _, err := st.Append(ctx, 10, []store.Message{keyed("gus", "a1", "K", 0)}); err != nil {
		t.Fatal(err)
	}
	res, err := st.Append(ctx, 10, []store.Message{keyed("gus", "b1", "K", 0), keyed("gus", "a1", "K", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Collapsed != "a1" || res[1].Duplicate || res[1].Collapsed != "b1" {
		t.Fatalf("[b1(K) a1(K)] after a1(K): %+v; want b1 replacing a1, then a1 (new) replacing b1", res)
	}
	if got := mailboxIDs(t, st, "gus"); !slices.Equal(got, []string{"a1"}) {
		t.Fatalf("mailbox %v, want [a1]", got)
	}
}
