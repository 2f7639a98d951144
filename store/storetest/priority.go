package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// prioritiesOf returns st's high lane, failing the test if st has none: every store of
// this module provides one.
func prioritiesOf(t *testing.T, st store.Store) store.Priorities {
	t.Helper()
	p, ok := st.(store.Priorities)
	if !ok {
		t.Fatalf("%T does not provide store.Priorities", st)
	}
	return p
}

// highMessage returns a high-priority message for client with an hour to live.
func highMessage(client, id string) store.Message {
	m := NewMessage(client, id)
	m.Priority = store.PriorityHigh
	return m
}

// mustPeekHigh is mustPeek for the high lane; it also checks that every message comes
// back marked as the high lane's.
func mustPeekHigh(t *testing.T, st store.Store, client string, after uint64, n int) []store.Message {
	t.Helper()
	msgs, err := prioritiesOf(t, st).PeekHigh(ctxT(t), client, after, n)
	if err != nil {
		t.Fatalf("peek high %q after %d: %v", client, after, err)
	}
	for i, m := range msgs {
		if m.Seq <= after || (i > 0 && m.Seq <= msgs[i-1].Seq) {
			t.Fatalf("peek high %q after %d: seq %d at %d of %v", client, after, m.Seq, i, seqs(msgs))
		}
		if m.TTL <= 0 {
			t.Fatalf("peek high %q: message %s with TTL %v", client, m.ID, m.TTL)
		}
		if m.Priority != store.PriorityHigh {
			t.Fatalf("peek high %q: message %s with priority %d", client, m.ID, m.Priority)
		}
	}
	return msgs
}

// peekHighIDs checks that PeekHigh after after returns the messages want, by id.
func peekHighIDs(t *testing.T, st store.Store, client string, after uint64, want ...string) []store.Message {
	t.Helper()
	msgs := mustPeekHigh(t, st, client, after, 1000)
	if got := ids(msgs); !slices.Equal(got, want) {
		t.Fatalf("peek high %q after %d = %v, want %v", client, after, got, want)
	}
	return msgs
}

// peekNormalIDs is peekIDs that also checks that every message comes back marked as the
// normal lane's.
func peekNormalIDs(t *testing.T, st store.Store, client string, after uint64, want ...string) []store.Message {
	t.Helper()
	msgs := peekIDs(t, st, client, after, want...)
	for _, m := range msgs {
		if m.Priority != store.PriorityNormal {
			t.Fatalf("peek %q: message %s with priority %d", client, m.ID, m.Priority)
		}
	}
	return msgs
}

// awaitPeekHigh is awaitPeek for the high lane.
func awaitPeekHigh(t *testing.T, st store.Store, client string, within time.Duration, want ...string) []store.Message {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msgs := mustPeekHigh(t, st, client, 0, 1000)
		got := ids(msgs)
		if slices.Equal(got, want) {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("peek high %q = %v after %v, want %v", client, got, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkLookupDepth checks the depth Lookup reads with the presence.
func checkLookupDepth(t *testing.T, st store.Store, client string, want int) {
	t.Helper()
	if _, d, err := st.Lookup(ctxT(t), client); err != nil || d != want {
		t.Fatalf("lookup of %q: depth %d, %v; want %d", client, d, err, want)
	}
}

// testPriorityLanes: normal and high appends interleaved, in one call and across calls,
// go to their own lanes; each lane keeps append order and reads back the messages as
// appended, marked with its priority; the sequence numbers are one counter, increasing
// in append order across both lanes. A call longer than one script run keeps both
// orders too.
func testPriorityLanes(t *testing.T, st store.Store) {
	n1, h1, n2, h2 := NewMessage("c1", "n1"), highMessage("c1", "h1"), NewMessage("c1", "n2"), highMessage("c1", "h2")
	h3, n3 := highMessage("c1", "h3"), NewMessage("c1", "n3")
	res := mustAdd(t, st, 100, n1, h1, n2, h2)
	res = append(res, mustAdd(t, st, 100, h3)...)
	res = append(res, mustAdd(t, st, 100, n3)...)
	for i := 1; i < len(res); i++ {
		if res[i].Seq <= res[i-1].Seq || res[i].Depth != i+1 {
			t.Fatalf("append %d: seq %d after %d, depth %d; want increasing seqs across lanes and depth %d",
				i, res[i].Seq, res[i-1].Seq, res[i].Depth, i+1)
		}
	}
	normal := peekNormalIDs(t, st, "c1", 0, "n1", "n2", "n3")
	high := peekHighIDs(t, st, "c1", 0, "h1", "h2", "h3")
	for i, want := range []store.Message{n1, n2, n3} {
		sameMessage(t, want.ID, normal[i], want)
	}
	for i, want := range []store.Message{h1, h2, h3} {
		sameMessage(t, want.ID, high[i], want)
	}
	for i, m := range []store.Message{normal[0], high[0], normal[1], high[1], high[2], normal[2]} {
		if m.Seq != res[i].Seq {
			t.Fatalf("%s read with seq %d, appended with %d", m.ID, m.Seq, res[i].Seq)
		}
	}
	peekHighIDs(t, st, "c2", 0)

	// Enough messages for several runs of a script, alternating lanes.
	var many []store.Message
	var wantNormal, wantHigh []string
	for i := range 300 {
		m := NewMessage("c2", fmt.Sprintf("m%03d", i))
		if i%3 == 0 {
			m.Priority = store.PriorityHigh
			wantHigh = append(wantHigh, m.ID)
		} else {
			wantNormal = append(wantNormal, m.ID)
		}
		many = append(many, m)
	}
	mustAdd(t, st, 1000, many...)
	peekNormalIDs(t, st, "c2", 0, wantNormal...)
	peekHighIDs(t, st, "c2", 0, wantHigh...)
	checkDepth(t, st, "c2", 300)
}

// testPriorityCursors: each lane reads after its own cursor, at most n; a cursor is a
// sequence number, so one of the other lane's works too; n of zero reads nothing.
func testPriorityCursors(t *testing.T, st store.Store) {
	res := mustAdd(t, st, 100, highMessage("c1", "h1"), NewMessage("c1", "n1"), highMessage("c1", "h2"),
		highMessage("c1", "h3"), NewMessage("c1", "n2"))
	peekHighIDs(t, st, "c1", res[0].Seq, "h2", "h3")
	peekHighIDs(t, st, "c1", res[3].Seq)
	peekHighIDs(t, st, "c1", res[1].Seq, "h2", "h3") // a normal message's seq
	peekNormalIDs(t, st, "c1", res[2].Seq, "n2")     // a high message's seq
	if got := mustPeekHigh(t, st, "c1", 0, 2); !slices.Equal(ids(got), []string{"h1", "h2"}) {
		t.Fatalf("peek high of 2 = %v, want [h1 h2]", ids(got))
	}
	if got := mustPeekHigh(t, st, "c1", res[0].Seq, 1); !slices.Equal(ids(got), []string{"h2"}) {
		t.Fatalf("peek high of 1 after h1 = %v, want [h2]", ids(got))
	}
	if got := mustPeekHigh(t, st, "c1", 0, 0); len(got) != 0 {
		t.Fatalf("peek high of 0 = %v", ids(got))
	}
}

// testPriorityDuplicate: an id queued in one lane is a duplicate in the other, in a later
// call and within one call, with the first copy's seq; nothing is added to either lane.
func testPriorityDuplicate(t *testing.T, st store.Store) {
	first := mustAdd(t, st, 10, highMessage("c1", "x"), NewMessage("c1", "y"))
	again := mustAdd(t, st, 10, NewMessage("c1", "x"), highMessage("c1", "y"))
	for i, r := range again {
		if !r.Duplicate || r.Seq != first[i].Seq || r.Depth != 2 {
			t.Fatalf("append %d again in the other lane: %+v; want a duplicate with seq %d, depth 2", i, r, first[i].Seq)
		}
	}
	peekHighIDs(t, st, "c1", 0, "x")
	peekNormalIDs(t, st, "c1", 0, "y")

	res := mustAppend(t, st, 10, NewMessage("c2", "z"), highMessage("c2", "z"))
	if res[0].Err != nil || res[0].Duplicate || !res[1].Duplicate || res[1].Seq != res[0].Seq {
		t.Fatalf("one id in both lanes in one call: %+v", res)
	}
	peekNormalIDs(t, st, "c2", 0, "z")
	peekHighIDs(t, st, "c2", 0)
	checkDepth(t, st, "c2", 1)
}

// testPriorityLimit: the mailbox limit counts both lanes; a full mailbox refuses a
// message of either lane and keeps what it holds.
func testPriorityLimit(t *testing.T, st store.Store) {
	mustAdd(t, st, 3, highMessage("c1", "h1"), NewMessage("c1", "n1"), highMessage("c1", "h2"))
	res := mustAppend(t, st, 3, NewMessage("c1", "n2"), highMessage("c1", "h3"))
	for i, r := range res {
		if !errors.Is(r.Err, store.ErrMailboxFull) || r.Seq != 0 || r.Depth != 3 {
			t.Fatalf("append %d to a mailbox full across lanes: %+v; want ErrMailboxFull at depth 3", i, r)
		}
	}
	peekHighIDs(t, st, "c1", 0, "h1", "h2")
	peekNormalIDs(t, st, "c1", 0, "n1")
	mustRemove(t, st, store.Removal{Client: "c1", IDs: []string{"h1"}})
	if r := mustAppend(t, st, 3, NewMessage("c1", "n2"))[0]; r.Err != nil || r.Depth != 3 {
		t.Fatalf("append once a high message left: %+v", r)
	}
}

// testPriorityRemove: Remove deletes from either lane, in one removal, wherever the
// messages are; removing again changes nothing.
func testPriorityRemove(t *testing.T, st store.Store) {
	mustAdd(t, st, 10, highMessage("c1", "h1"), NewMessage("c1", "n1"), highMessage("c1", "h2"),
		NewMessage("c1", "n2"), highMessage("c1", "h3"))
	rm := store.Removal{Client: "c1", IDs: []string{"h2", "n1", "absent"}}
	mustRemove(t, st, rm)
	mustRemove(t, st, rm)
	peekHighIDs(t, st, "c1", 0, "h1", "h3")
	peekNormalIDs(t, st, "c1", 0, "n2")
	checkDepth(t, st, "c1", 3)
	mustRemove(t, st, store.Removal{Client: "c1", IDs: []string{"h1", "h3", "n2"}})
	peekHighIDs(t, st, "c1", 0)
	peekNormalIDs(t, st, "c1", 0)
	checkDepth(t, st, "c1", 0)
}

// testPriorityDepth: Depth, Lookup and the Mailboxes walk count both lanes, a mailbox
// that holds only high-priority messages included.
func testPriorityDepth(t *testing.T, st store.Store) {
	mustAdd(t, st, 10, highMessage("both", "h1"), NewMessage("both", "n1"), highMessage("both", "h2"),
		highMessage("high", "h1"), highMessage("high", "h2"), NewMessage("normal", "n1"))
	mustConnect(t, st, NewPresence("high", "n1", 1))
	for client, want := range map[string]int{"both": 3, "high": 2, "normal": 1, "none": 0} {
		checkDepth(t, st, client, want)
		checkLookupDepth(t, st, client, want)
	}
	want := map[string]int{"both": 3, "high": 2, "normal": 1}
	for _, n := range []int{2, 1000} {
		// Redis examines n keys of every kind per call.
		if got := walk(t, st, n, 10000); !maps.Equal(got, want) {
			t.Fatalf("walk in pages of %d = %v, want %v", n, got, want)
		}
	}
	// A mailbox whose normal lane emptied is still walked, by its high lane.
	mustRemove(t, st, store.Removal{Client: "both", IDs: []string{"n1"}})
	want["both"] = 2
	if got := walk(t, st, 1000, 10000); !maps.Equal(got, want) {
		t.Fatalf("walk after the normal lane emptied = %v, want %v", got, want)
	}
}

// testPriorityExpiry: a high-priority message lives for its TTL, as a normal one; PeekHigh
// never returns one that expired, deletes those at its lane's head (Depth drops), and an
// expired one behind an unexpired one does not use up n. A mailbox whose high lane all
// expired is empty, and its numbering goes on.
func testPriorityExpiry(t *testing.T, st store.Store) {
	hs := shortMessage("c1", "hs", shortTTL)
	hs.Priority = store.PriorityHigh
	mustAdd(t, st, 10, hs, shortMessage("c1", "ns", shortTTL), highMessage("c1", "hl"), NewMessage("c1", "nl"))
	awaitPeekHigh(t, st, "c1", expireWithin, "hl")
	awaitPeek(t, st, "c1", 0, expireWithin, "nl")
	checkDepth(t, st, "c1", 2)

	soon := shortMessage("c2", "soon", shortTTL)
	soon.Priority = store.PriorityHigh
	res := mustAdd(t, st, 10, highMessage("c2", "h1"), soon, highMessage("c2", "h2"))
	awaitPeekHigh(t, st, "c2", expireWithin, "h1", "h2")
	if got := mustPeekHigh(t, st, "c2", res[0].Seq, 1); !slices.Equal(ids(got), []string{"h2"}) {
		t.Fatalf("peek high of 1 after h1 = %v, want h2: an expired message must not use up n", ids(got))
	}

	only := shortMessage("c3", "only", shortTTL)
	only.Priority = store.PriorityHigh
	r := mustAdd(t, st, 10, only)[0]
	awaitPeekHigh(t, st, "c3", expireWithin)
	checkDepth(t, st, "c3", 0)
	checkLookupDepth(t, st, "c3", 0)
	if again := mustAdd(t, st, 10, highMessage("c3", "after"))[0]; again.Seq <= r.Seq || again.Depth != 1 {
		t.Fatalf("append after the high lane expired: %+v, want depth 1 and seq after %d", again, r.Seq)
	}
}

// testPriorityCollapse: a collapse key replaces the queued message with that key whichever
// lane holds it, and the replacement goes in its own message's lane; the limit of keys
// counts the keys of both lanes; the replaced message's receipt says collapsed.
func testPriorityCollapse(t *testing.T, st store.Store) {
	first := keyed("c1", "k1", "score", 10)
	first.Receipt = true
	mustAdd(t, st, 10, first, NewMessage("c1", "n1"))
	up := keyed("c1", "k2", "score", 10)
	up.Priority = store.PriorityHigh
	if r := mustAdd(t, st, 10, up)[0]; r.Collapsed != "k1" || r.Depth != 2 {
		t.Fatalf("a high message replacing a normal one: %+v, want k1 collapsed at depth 2", r)
	}
	peekNormalIDs(t, st, "c1", 0, "n1")
	peekHighIDs(t, st, "c1", 0, "k2")
	s, err := receiptsOf(t, st).MessageState(ctxT(t), "c1", "k1")
	if err != nil || s.Pending || s.Receipt.Status != store.ReceiptCollapsed {
		t.Fatalf("state of the replaced message: %+v, %v; want collapsed", s, err)
	}
	if r := mustAdd(t, st, 10, keyed("c1", "k3", "score", 10))[0]; r.Collapsed != "k2" || r.Depth != 2 {
		t.Fatalf("a normal message replacing a high one: %+v, want k2 collapsed at depth 2", r)
	}
	peekNormalIDs(t, st, "c1", 0, "n1", "k3")
	peekHighIDs(t, st, "c1", 0)

	// Both in one call, the second in the other lane.
	a, b := keyed("c2", "a", "k", 10), keyed("c2", "b", "k", 10)
	a.Priority = store.PriorityHigh
	if res := mustAdd(t, st, 10, a, b); res[1].Collapsed != "a" || res[1].Depth != 1 {
		t.Fatalf("one key, two lanes, one call: %+v", res)
	}
	peekHighIDs(t, st, "c2", 0)
	peekNormalIDs(t, st, "c2", 0, "b")

	// A key queued in the high lane counts toward the limit of a normal message's keys.
	h := keyed("c3", "h", "k1", 1)
	h.Priority = store.PriorityHigh
	mustAdd(t, st, 10, h)
	if r := mustAppend(t, st, 10, keyed("c3", "n", "k2", 1))[0]; !errors.Is(r.Err, store.ErrTooManyCollapseKeys) {
		t.Fatalf("a second key past a limit of one held by the high lane: %+v", r)
	}
}

// testPriorityUnknown: PeekHigh of a client with no mailbox, or with normal messages only,
// returns nothing; Peek of one with high messages only returns nothing; an empty client
// id is refused.
func testPriorityUnknown(t *testing.T, st store.Store) {
	peekHighIDs(t, st, "nobody", 0)
	mustAdd(t, st, 10, NewMessage("normal", "n1"), highMessage("high", "h1"))
	peekHighIDs(t, st, "normal", 0)
	peekNormalIDs(t, st, "high", 0)
	if _, err := prioritiesOf(t, st).PeekHigh(ctxT(t), "", 0, 10); err == nil {
		t.Fatal("peek high of an empty client id: no error")
	}
}
