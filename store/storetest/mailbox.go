package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

func testAppendFIFO(t *testing.T, s store.Store) {
	const total = 1000
	var want []string
	for i := range total {
		id := fmt.Sprintf("m%04d", i)
		want = append(want, id)
		res := mustAppend(t, s, NewMessage("c1", id), total)
		if res.Depth != i+1 || res.Duplicate {
			t.Fatalf("append %s: %+v, want depth %d", id, res, i+1)
		}
	}
	p := NewPresence("c1", "n1", 1)
	mustConnect(t, s, p)
	var got []string
	for len(got) < total {
		batch := mustPeek(t, s, "c1", 128)
		if len(batch) == 0 {
			t.Fatalf("peek returned nothing after %d of %d messages", len(got), total)
		}
		got = append(got, ids(batch)...)
		left, err := s.Ack(ctxT(t), "c1", p.Session, ids(batch))
		if err != nil {
			t.Fatal(err)
		}
		if left != total-len(got) {
			t.Fatalf("ack left %d, want %d", left, total-len(got))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("messages out of order: first difference at %d", firstDiff(got, want))
	}
	if d := mustDepth(t, s, "c1"); d != 0 {
		t.Fatalf("depth after acking everything: %d", d)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func testAppendDuplicate(t *testing.T, s store.Store) {
	m := NewMessage("c1", "dup")
	mustAppend(t, s, NewMessage("c1", "first"), 10)
	if res := mustAppend(t, s, m, 10); res.Duplicate || res.Depth != 2 {
		t.Fatalf("first append: %+v", res)
	}
	again := m
	again.Payload = []byte("something else")
	res := mustAppend(t, s, again, 10)
	if !res.Duplicate || res.Depth != 2 {
		t.Fatalf("duplicate append: %+v, want Duplicate and depth 2", res)
	}
	msgs := mustPeek(t, s, "c1", 10)
	if len(msgs) != 2 {
		t.Fatalf("peek after duplicate: %v", ids(msgs))
	}
	sameMessage(t, "the original", msgs[1], m)
	// A full mailbox still recognises a duplicate rather than refusing it.
	if res, err := s.Append(ctxT(t), m, 2); err != nil || !res.Duplicate {
		t.Fatalf("duplicate into a full mailbox = %+v, %v; want Duplicate", res, err)
	}
}

func testAppendFull(t *testing.T, s store.Store) {
	const limit = 5
	var want []store.Message
	for i := range limit {
		m := NewMessage("c1", fmt.Sprint("m", i))
		want = append(want, m)
		mustAppend(t, s, m, limit)
	}
	_, err := s.Append(ctxT(t), NewMessage("c1", "one-too-many"), limit)
	if !errors.Is(err, store.ErrMailboxFull) {
		t.Fatalf("append beyond the limit: %v, want ErrMailboxFull", err)
	}
	msgs := mustPeek(t, s, "c1", 100)
	if len(msgs) != limit {
		t.Fatalf("after refused append the mailbox holds %v, want %d old messages", ids(msgs), limit)
	}
	for i := range msgs {
		sameMessage(t, "old message", msgs[i], want[i])
	}
	p := NewPresence("c1", "n1", 1)
	mustConnect(t, s, p)
	if _, err := s.Ack(ctxT(t), "c1", p.Session, []string{"m0"}); err != nil {
		t.Fatal(err)
	}
	if res := mustAppend(t, s, NewMessage("c1", "fits-now"), limit); res.Depth != limit {
		t.Fatalf("append after ack: %+v, want depth %d", res, limit)
	}
}

func testAppendPresence(t *testing.T, s store.Store) {
	if res := mustAppend(t, s, NewMessage("c1", "m1"), 10); res.Presence.Online() {
		t.Fatalf("append to an offline client read presence %+v", res.Presence)
	}
	p := NewPresence("c1", "n1", 4)
	mustConnect(t, s, p)
	res := mustAppend(t, s, NewMessage("c1", "m2"), 10)
	samePresence(t, "append's presence", res.Presence, p)
	if res.Depth != 2 {
		t.Fatalf("depth %d, want 2", res.Depth)
	}
	res = mustAppend(t, s, NewMessage("c1", "m2"), 10)
	samePresence(t, "duplicate append's presence", res.Presence, p)
}

func testExpiredHead(t *testing.T, s store.Store) {
	past := time.Now().Add(-time.Second)
	for _, id := range []string{"old1", "old2"} {
		m := NewMessage("c1", id)
		m.Expires = past
		mustAppend(t, s, m, 10)
	}
	barely := NewMessage("c1", "barely")
	barely.Expires = time.Now().Add(-time.Millisecond)
	mustAppend(t, s, barely, 10)
	live := NewMessage("c1", "live")
	mustAppend(t, s, live, 10)
	msgs := mustPeek(t, s, "c1", 10)
	if len(msgs) != 1 {
		t.Fatalf("peek returned %v, want only the live message", ids(msgs))
	}
	sameMessage(t, "live", msgs[0], live)
	if d := mustDepth(t, s, "c1"); d != 1 {
		t.Fatalf("depth after peek %d, want 1: the expired head was not removed", d)
	}

	expired := NewMessage("c2", "expired")
	expired.Expires = past
	mustAppend(t, s, expired, 10)
	if msgs := mustPeek(t, s, "c2", 10); len(msgs) != 0 {
		t.Fatalf("peek of a mailbox holding only expired messages returned %v", ids(msgs))
	}
	if d := mustDepth(t, s, "c2"); d != 0 {
		t.Fatalf("depth %d, want 0", d)
	}
}

func testExpiredBehind(t *testing.T, s store.Store) {
	live := NewMessage("c1", "live")
	mustAppend(t, s, live, 10)
	soon := NewMessage("c1", "soon")
	soon.Expires = time.Now().Add(-time.Second)
	mustAppend(t, s, soon, 10)
	msgs := mustPeek(t, s, "c1", 10)
	if len(msgs) == 0 || msgs[0].ID != "live" {
		t.Fatalf("peek returned %v, want live first", ids(msgs))
	}
	for _, m := range msgs[1:] {
		if !m.Expired(time.Now()) {
			t.Fatalf("unexpected message %s", m.ID)
		}
	}
	p := NewPresence("c1", "n1", 1)
	mustConnect(t, s, p)
	if _, err := s.Ack(ctxT(t), "c1", p.Session, []string{"live"}); err != nil {
		t.Fatal(err)
	}
	// Now the expired message is at the head.
	if msgs := mustPeek(t, s, "c1", 10); len(msgs) != 0 {
		t.Fatalf("peek returned %v, want nothing", ids(msgs))
	}
	if d := mustDepth(t, s, "c1"); d != 0 {
		t.Fatalf("depth %d, want 0", d)
	}
}

func testAck(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	for _, id := range []string{"a", "b", "c", "d"} {
		mustAppend(t, s, NewMessage("c1", id), 10)
	}
	p := NewPresence("c1", "n1", 1)
	mustConnect(t, s, p)
	ack := func(ids []string, want int) {
		t.Helper()
		left, err := s.Ack(ctx, "c1", p.Session, ids)
		if err != nil || left != want {
			t.Fatalf("ack %v = %d, %v; want %d", ids, left, err, want)
		}
	}
	ack([]string{"b"}, 4) // not at the head
	ack([]string{"a", "b"}, 2)
	ack([]string{"a", "b"}, 2) // again: nothing changes
	ack(nil, 2)
	ack([]string{"a", "b", "c"}, 1) // a and b are gone, c is at the head
	ack([]string{"x", "d"}, 0)
	ack([]string{"d"}, 0)
	if msgs := mustPeek(t, s, "c1", 10); len(msgs) != 0 {
		t.Fatalf("peek after acking everything: %v", ids(msgs))
	}
}

func testAckNotOwner(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustAppend(t, s, NewMessage("c1", "a"), 10)
	if _, err := s.Ack(ctx, "c1", "no-presence", []string{"a"}); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("ack without presence: %v, want ErrNotOwner", err)
	}
	old := NewPresence("c1", "n1", 1)
	mustConnect(t, s, old)
	mustConnect(t, s, NewPresence("c1", "n2", 1))
	if _, err := s.Ack(ctx, "c1", old.Session, []string{"a"}); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("ack with a stale session: %v, want ErrNotOwner", err)
	}
	if d := mustDepth(t, s, "c1"); d != 1 {
		t.Fatalf("a refused ack changed the depth to %d", d)
	}
}

func testPayloads(t *testing.T, s store.Store) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	accepted := time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.UTC)
	cases := []store.Message{
		{ID: "all-bytes", Topic: "bin/ä/#", Payload: all, QoS: 2},
		{ID: "empty", Topic: "e", Payload: []byte{}, QoS: 0},
		{ID: "nil", Topic: "", Payload: nil, QoS: 1},
		{ID: "id\x00with\xffbytes,1,", Topic: "t", Payload: []byte("1,99,"), QoS: 1},
		{ID: "large", Topic: "l", Payload: bytesOf(1<<20, 0xa5), QoS: 1},
	}
	for i := range cases {
		cases[i].To = "c1"
		cases[i].Accepted = accepted
		cases[i].Expires = time.Now().Add(time.Duration(i+1) * time.Hour)
		mustAppend(t, s, cases[i], 100)
	}
	msgs := mustPeek(t, s, "c1", 100)
	if len(msgs) != len(cases) {
		t.Fatalf("peek returned %d messages, want %d", len(msgs), len(cases))
	}
	for i := range cases {
		sameMessage(t, cases[i].ID, msgs[i], cases[i])
	}
}

func bytesOf(n int, b byte) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func testClientIDs(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	clients := []string{"a", "a}", "{a}", "a{", "}", "{", "{}", "a:b", "a:", ":a", "a b", " ",
		"ünïcødé", "日本語", "😀", "a}:q", "x:{c:a}"}
	sessions := map[string]string{}
	for i, c := range clients {
		mustAppend(t, s, NewMessage(c, fmt.Sprint("for-", i)), 10)
		p := NewPresence(c, fmt.Sprint("node-", i), int64(i))
		mustConnect(t, s, p)
		sessions[c] = p.Session
	}
	for i, c := range clients {
		msgs := mustPeek(t, s, c, 10)
		if len(msgs) != 1 || msgs[0].ID != fmt.Sprint("for-", i) || msgs[0].To != c {
			t.Fatalf("client %q sees %v, want only for-%d", c, ids(msgs), i)
		}
		p, depth, err := s.Lookup(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if p.Node != fmt.Sprint("node-", i) || p.Session != sessions[c] || depth != 1 {
			t.Fatalf("client %q: %+v depth %d", c, p, depth)
		}
	}
	// Clearing one client's node touches no other.
	if n, err := s.ClearNode(ctx, "node-1", 1); err != nil || n != 1 {
		t.Fatalf("ClearNode(node-1) = %d, %v; want 1", n, err)
	}
	if p, _, _ := s.Lookup(ctx, "a"); !p.Online() {
		t.Fatal(`clearing "a}" cleared "a"`)
	}
}

func testConcurrentAppends(t *testing.T, s store.Store) {
	const writers, each = 8, 125
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				m := NewMessage("c1", fmt.Sprintf("w%d-%03d", w, i))
				// Every message is sent twice, as a retrying sender would.
				for range 2 {
					if _, err := s.Append(ctx, m, writers*each); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if d := mustDepth(t, s, "c1"); d != writers*each {
		t.Fatalf("depth %d, want %d", d, writers*each)
	}
	var got []string
	p := NewPresence("c1", "n1", 1)
	mustConnect(t, s, p)
	for {
		batch := mustPeek(t, s, "c1", 200)
		if len(batch) == 0 {
			break
		}
		got = append(got, ids(batch)...)
		if _, err := s.Ack(ctx, "c1", p.Session, ids(batch)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	next := make([]int, writers) // each writer's messages stay in its order
	for _, id := range got {
		if seen[id] {
			t.Fatalf("%s stored twice", id)
		}
		seen[id] = true
		var w, i int
		if _, err := fmt.Sscanf(id, "w%d-%d", &w, &i); err != nil {
			t.Fatalf("unexpected id %q", id)
		}
		if i != next[w] {
			t.Fatalf("writer %d: got message %d, want %d", w, i, next[w])
		}
		next[w]++
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct messages, want %d", len(seen), writers*each)
	}
}

func testPingClose(t *testing.T, s store.Store) {
	if err := s.Ping(ctxT(t)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func testCancelled(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Append(ctx, NewMessage("c1", "m"), 10); err == nil {
		t.Fatal("append with a cancelled context succeeded")
	}
	if _, _, err := s.Lookup(ctx, "c1"); err == nil {
		t.Fatal("lookup with a cancelled context succeeded")
	}
	if d := mustDepth(t, s, "c1"); d != 0 {
		t.Fatalf("append with a cancelled context wrote: depth %d", d)
	}
}
