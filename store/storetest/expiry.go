package storetest

import (
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// shortTTL is the TTL of the messages the expiry tests wait out.
const shortTTL = time.Second

// expireWithin bounds the wait for a message of shortTTL to be gone: its TTL and ample
// slack for a loaded machine.
const expireWithin = shortTTL + 10*time.Second

// shortMessage returns a message for client with ttl to live.
func shortMessage(client, id string, ttl time.Duration) store.Message {
	m := NewMessage(client, id)
	m.TTL = ttl
	return m
}

// testTTLOnStoreClock: a message lives for its TTL counted on the store's clock from the
// moment it was stored, whatever the sender's clock said (Accepted is informational).
// Peek reports the time left, positive and never more than was given.
func testTTLOnStoreClock(t *testing.T, s store.Store) {
	const ttl = 2 * time.Second
	past := shortMessage("c1", "past", ttl)
	past.Accepted = time.Now().AddDate(-10, 0, 0) // a sender whose clock is ten years behind
	future := shortMessage("c1", "future", ttl)
	future.Accepted = time.Now().AddDate(10, 0, 0) // and one ten years ahead
	long := NewMessage("c1", "long")
	long.Accepted = time.Time{}
	mustAdd(t, s, 10, past, future, long)
	msgs := peekIDs(t, s, "c1", 0, "past", "future", "long")
	for i, want := range []store.Message{past, future, long} {
		sameMessage(t, want.ID, msgs[i], want)
	}
	// The hour counts from the append, not from a zero Accepted: nearly all of it is left.
	if msgs[2].TTL < long.TTL-time.Minute {
		t.Fatalf("long: %v left of %v", msgs[2].TTL, long.TTL)
	}
	// Once two seconds have passed on the store's clock, both short messages are gone.
	start := time.Now()
	awaitPeek(t, s, "c1", 0, ttl+expireWithin, "long")
	t.Logf("the %v messages were gone after %v more", ttl, time.Since(start).Round(time.Millisecond))
	checkDepth(t, s, "c1", 1)
}

// testExpiredHead: expired messages at the head are deleted by Peek, never returned; a
// mailbox whose messages all expired is empty, and its numbering goes on.
func testExpiredHead(t *testing.T, s store.Store) {
	res := mustAdd(t, s, 10,
		shortMessage("c1", "old1", shortTTL), shortMessage("c1", "old2", shortTTL),
		NewMessage("c1", "live"), shortMessage("c2", "expired", shortTTL))
	awaitPeek(t, s, "c1", 0, expireWithin, "live")
	checkDepth(t, s, "c1", 1)
	// A cursor before the expired messages reads past them too.
	peekIDs(t, s, "c1", res[0].Seq, "live")

	r := res[3]
	awaitPeek(t, s, "c2", 0, expireWithin)
	checkDepth(t, s, "c2", 0)
	if p, depth, err := s.Lookup(ctxT(t), "c2"); err != nil || depth != 0 || p.Online() {
		t.Fatalf("lookup of an expired mailbox = %+v, %d, %v", p, depth, err)
	}
	if again := mustAdd(t, s, 10, NewMessage("c2", "after"))[0]; again.Seq <= r.Seq || again.Depth != 1 {
		t.Fatalf("append after the mailbox expired: %+v, want depth 1 and seq after %d", again, r.Seq)
	}
}

// testExpiredBehind: a message that expired behind an unexpired one is skipped, and once
// it reaches the head it is deleted.
func testExpiredBehind(t *testing.T, s store.Store) {
	live := NewMessage("c1", "live")
	res := mustAdd(t, s, 10, live, shortMessage("c1", "soon", shortTTL), NewMessage("c1", "later"))
	awaitPeek(t, s, "c1", 0, expireWithin, "live", "later")
	peekIDs(t, s, "c1", res[0].Seq, "later")
	peekIDs(t, s, "c1", res[1].Seq, "later")
	if got := mustPeek(t, s, "c1", 0, 1); len(got) != 1 || got[0].ID != "live" {
		t.Fatalf("peek of 1 = %v, want live", ids(got))
	}
	if got := mustPeek(t, s, "c1", res[0].Seq, 1); len(got) != 1 || got[0].ID != "later" {
		t.Fatalf("peek of 1 after live = %v, want later: an expired message must not use up n", ids(got))
	}
	mustRemove(t, s, removal(live))
	peekIDs(t, s, "c1", 0, "later")
	checkDepth(t, s, "c1", 1)
}
