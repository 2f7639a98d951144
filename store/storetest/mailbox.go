package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// testFIFOWithCursors appends a thousand messages in batches of varied sizes and reads
// them back as a node does, each Peek after the last sequence number seen.
func testFIFOWithCursors(t *testing.T, s store.Store) {
	const total = 1000
	var sent []store.Message
	var added []store.AppendResult
	for len(sent) < total {
		batch := messages("c1", "m", len(sent), min(1+len(sent)%37, total-len(sent)))
		res := mustAdd(t, s, total, batch...)
		for i, r := range res {
			if r.Depth != len(sent)+i+1 || r.Duplicate {
				t.Fatalf("append %s: %+v, want depth %d", batch[i].ID, r, len(sent)+i+1)
			}
			if n := len(added); n > 0 && r.Seq <= added[n-1].Seq {
				t.Fatalf("append %s: seq %d after %d", batch[i].ID, r.Seq, added[n-1].Seq)
			}
			added = append(added, r)
		}
		sent = append(sent, batch...)
	}
	var got []store.Message
	var after uint64
	for len(got) < total {
		batch := mustPeek(t, s, "c1", after, 128)
		if len(batch) == 0 {
			t.Fatalf("peek after %d returned nothing after %d of %d messages", after, len(got), total)
		}
		after = batch[len(batch)-1].Seq
		got = append(got, batch...)
	}
	if len(got) != total {
		t.Fatalf("read %d messages, want %d", len(got), total)
	}
	for i := range sent {
		sameMessage(t, fmt.Sprint("message ", i), got[i], sent[i])
		if got[i].Seq != added[i].Seq {
			t.Fatalf("message %d: seq %d, Append said %d", i, got[i].Seq, added[i].Seq)
		}
	}
	peekIDs(t, s, "c1", after)
	// Reading removes nothing: from the start, the head is still the first message.
	if head := mustPeek(t, s, "c1", 0, 1); len(head) != 1 || head[0].ID != sent[0].ID {
		t.Fatalf("peek from the start = %v, want %s", ids(head), sent[0].ID)
	}
	checkDepth(t, s, "c1", total)
	for i := 0; i < total; i += 100 {
		mustRemove(t, s, removal(got[i:i+100]...))
		checkDepth(t, s, "c1", total-i-100)
	}
	peekIDs(t, s, "c1", 0)
}

// testPeekAfterCursor: Peek returns only messages after the cursor, oldest first, and at
// most n of them.
func testPeekAfterCursor(t *testing.T, s store.Store) {
	res := mustAdd(t, s, 10, messages("c1", "m", 0, 3)...)
	peekIDs(t, s, "c1", 0, "m0000", "m0001", "m0002")
	peekIDs(t, s, "c1", res[0].Seq, "m0001", "m0002")
	peekIDs(t, s, "c1", res[2].Seq)
	// What arrives later is all a Peek after the last seen returns.
	mustAdd(t, s, 10, NewMessage("c1", "m0003"))
	peekIDs(t, s, "c1", res[2].Seq, "m0003")
	peekIDs(t, s, "c1", res[1].Seq, "m0002", "m0003")
	// A cursor between two sequence numbers.
	if res[1].Seq-res[0].Seq > 1 {
		peekIDs(t, s, "c1", res[0].Seq+1, "m0001", "m0002", "m0003")
	}
	if got := ids(mustPeek(t, s, "c1", 0, 2)); !slices.Equal(got, []string{"m0000", "m0001"}) {
		t.Fatalf("peek of 2 = %v, want the first two", got)
	}
	if got := ids(mustPeek(t, s, "c1", res[0].Seq, 1)); !slices.Equal(got, []string{"m0001"}) {
		t.Fatalf("peek of 1 after the first = %v, want m0001", got)
	}
	for _, n := range []int{0, -1} {
		if got := mustPeek(t, s, "c1", 0, n); len(got) != 0 {
			t.Fatalf("peek of %d = %v, want nothing", n, ids(got))
		}
	}
	peekIDs(t, s, "c1", math.MaxUint64)
	peekIDs(t, s, "nobody", 0)
}

func testPeekAtMostAThousand(t *testing.T, s store.Store) {
	const total = 1100
	var res []store.AppendResult
	for i := 0; i < total; i += 100 {
		res = append(res, mustAdd(t, s, 2000, messages("c1", "m", i, 100)...)...)
	}
	msgs := mustPeek(t, s, "c1", 0, 5000)
	if len(msgs) != 1000 || msgs[0].ID != "m0000" || msgs[999].ID != "m0999" {
		t.Fatalf("peek of 5000 = %d messages from %s; want the first 1000", len(msgs), msgs[0].ID)
	}
	rest := mustPeek(t, s, "c1", msgs[999].Seq, 5000)
	if len(rest) != total-1000 || rest[0].Seq != res[1000].Seq {
		t.Fatalf("peek after the first 1000 = %d messages; want %d", len(rest), total-1000)
	}
}

// testSeqNeverReused: a client's sequence numbers keep growing after its mailbox emptied.
func testSeqNeverReused(t *testing.T, s store.Store) {
	a, b := NewMessage("c1", "a"), NewMessage("c1", "b")
	first := mustAdd(t, s, 10, a, b)
	if first[1].Seq <= first[0].Seq {
		t.Fatalf("seqs %d then %d", first[0].Seq, first[1].Seq)
	}
	mustRemove(t, s, removal(a, b))
	checkDepth(t, s, "c1", 0)
	c := NewMessage("c1", "c")
	last := first[1].Seq
	for _, m := range []store.Message{c, NewMessage("c1", "d"), a} {
		r := mustAdd(t, s, 10, m)[0]
		if r.Duplicate || r.Seq <= last {
			t.Fatalf("append %s after the mailbox emptied: %+v, want a new seq after %d", m.ID, r, last)
		}
		last = r.Seq
		// Removing the newest, so the mailbox's tail is free again, changes nothing.
		mustRemove(t, s, removal(m))
	}
	// Another client's appends never move this client's numbers back.
	mustAdd(t, s, 10, NewMessage("c2", "x"))
	if r := mustAdd(t, s, 10, NewMessage("c1", "e"))[0]; r.Seq <= last {
		t.Fatalf("seq %d after %d", r.Seq, last)
	}
}

func testAppendDuplicate(t *testing.T, s store.Store) {
	mustAdd(t, s, 10, NewMessage("c1", "first"))
	orig := NewMessage("c1", "dup")
	r := mustAdd(t, s, 10, orig)[0]
	if r.Duplicate || r.Depth != 2 {
		t.Fatalf("first append: %+v", r)
	}
	again := orig
	again.Payload = []byte("something else")
	again.TTL = 2 * time.Hour
	if d := mustAdd(t, s, 10, again)[0]; !d.Duplicate || d.Seq != r.Seq || d.Depth != 2 {
		t.Fatalf("duplicate append: %+v, want Duplicate, seq %d and depth 2", d, r.Seq)
	}
	// In one batch: a new message, the same one again, and one already there.
	res := mustAdd(t, s, 10, NewMessage("c1", "new"), NewMessage("c1", "new"), orig)
	if res[0].Duplicate || res[0].Depth != 3 {
		t.Fatalf("new message: %+v", res[0])
	}
	if !res[1].Duplicate || res[1].Seq != res[0].Seq || res[1].Depth != 3 {
		t.Fatalf("the same id again in one batch: %+v, want Duplicate of seq %d", res[1], res[0].Seq)
	}
	if !res[2].Duplicate || res[2].Seq != r.Seq {
		t.Fatalf("known id in a batch: %+v, want Duplicate of seq %d", res[2], r.Seq)
	}
	msgs := peekIDs(t, s, "c1", 0, "first", "dup", "new")
	sameMessage(t, "the original", msgs[1], orig)
	// A full mailbox still recognises a duplicate rather than refusing it.
	res = mustAppend(t, s, 3, orig, NewMessage("c1", "over"))
	if !res[0].Duplicate || res[0].Err != nil || res[0].Seq != r.Seq {
		t.Fatalf("duplicate into a full mailbox = %+v; want Duplicate of seq %d", res[0], r.Seq)
	}
	if !errors.Is(res[1].Err, store.ErrMailboxFull) {
		t.Fatalf("new message into a full mailbox = %+v; want ErrMailboxFull", res[1])
	}
}

func testAppendFull(t *testing.T, s store.Store) {
	const limit = 5
	want := messages("c1", "m", 0, 3)
	mustAdd(t, s, limit, want...)
	more := messages("c1", "m", 3, 4)
	res := mustAppend(t, s, limit, more...)
	for i, r := range res[:2] {
		if r.Err != nil || r.Depth != 4+i {
			t.Fatalf("append %s: %+v, want depth %d", more[i].ID, r, 4+i)
		}
	}
	for i, r := range res[2:] {
		if !errors.Is(r.Err, store.ErrMailboxFull) || r.Seq != 0 || r.Duplicate || r.Depth != limit {
			t.Fatalf("append %s beyond the limit: %+v, want ErrMailboxFull at depth %d", more[2+i].ID, r, limit)
		}
	}
	want = append(want, more[:2]...)
	msgs := mustPeek(t, s, "c1", 0, 100)
	if len(msgs) != limit {
		t.Fatalf("after refused appends the mailbox holds %v, want %d old messages", ids(msgs), limit)
	}
	for i := range msgs {
		sameMessage(t, "old message", msgs[i], want[i])
	}
	// One client's full mailbox does not hold up another's message in the same call.
	res = mustAppend(t, s, limit, NewMessage("c1", "x"), NewMessage("c2", "y"))
	if !errors.Is(res[0].Err, store.ErrMailboxFull) || res[1].Err != nil || res[1].Depth != 1 {
		t.Fatalf("append to a full and an empty mailbox: %+v", res)
	}
	mustRemove(t, s, removal(want[0]))
	r := mustAdd(t, s, limit, more[2])[0]
	if r.Depth != limit || r.Seq <= msgs[limit-1].Seq {
		t.Fatalf("append after a removal: %+v, want depth %d after seq %d", r, limit, msgs[limit-1].Seq)
	}
	peekIDs(t, s, "c1", 0, "m0001", "m0002", "m0003", "m0004", "m0005")
}

// testAppendBatchManyClients: one Append for several clients returns a result per
// message, in order, and each client's messages keep their order.
func testAppendBatchManyClients(t *testing.T, s store.Store) {
	clients := []string{"a", "b", "c"}
	var msgs []store.Message
	for i := range 30 {
		c := clients[(i*i+i/3)%len(clients)]
		msgs = append(msgs, NewMessage(c, fmt.Sprintf("%s-%02d", c, i)))
	}
	res := mustAdd(t, s, 100, msgs...)
	want := map[string][]string{}
	seqOf := map[string]uint64{}
	for i, m := range msgs {
		want[m.To] = append(want[m.To], m.ID)
		r := res[i]
		if r.Duplicate || r.Depth != len(want[m.To]) {
			t.Fatalf("result %d (%s for %s): %+v, want depth %d", i, m.ID, m.To, r, len(want[m.To]))
		}
		if r.Seq <= seqOf[m.To] {
			t.Fatalf("result %d (%s for %s): seq %d after %d", i, m.ID, m.To, r.Seq, seqOf[m.To])
		}
		seqOf[m.To] = r.Seq
	}
	for _, c := range clients {
		got := mustPeek(t, s, c, 0, 100)
		if !slices.Equal(ids(got), want[c]) {
			t.Fatalf("client %s holds %v, want %v", c, ids(got), want[c])
		}
		if got[len(got)-1].Seq != seqOf[c] {
			t.Fatalf("client %s: last seq %d, Append said %d", c, got[len(got)-1].Seq, seqOf[c])
		}
	}
	if res, err := s.Append(ctxT(t), 10, nil); err != nil || len(res) != 0 {
		t.Fatalf("append of nothing = %+v, %v", res, err)
	}
}

func testAppendPresence(t *testing.T, s store.Store) {
	if r := mustAdd(t, s, 10, NewMessage("c1", "m1"))[0]; r.Presence.Online() {
		t.Fatalf("append to an offline client read presence %+v", r.Presence)
	}
	p := NewPresence("c1", "n1", 4)
	mustConnect(t, s, p)
	res := mustAdd(t, s, 10, NewMessage("c1", "m2"), NewMessage("c2", "x"), NewMessage("c1", "m3"))
	samePresence(t, "append's presence", res[0].Presence, p)
	samePresence(t, "append's presence, second message", res[2].Presence, p)
	if res[1].Presence.Online() {
		t.Fatalf("append to offline c2 read presence %+v", res[1].Presence)
	}
	if res[0].Depth != 2 || res[2].Depth != 3 {
		t.Fatalf("depths %d and %d, want 2 and 3", res[0].Depth, res[2].Depth)
	}
	r := mustAdd(t, s, 10, NewMessage("c1", "m2"))[0]
	samePresence(t, "duplicate append's presence", r.Presence, p)
	r = mustAppend(t, s, 3, NewMessage("c1", "m4"))[0]
	if !errors.Is(r.Err, store.ErrMailboxFull) {
		t.Fatalf("append to a full mailbox: %+v", r)
	}
	samePresence(t, "full mailbox's presence", r.Presence, p)
	if ok, err := s.Disconnect(ctxT(t), "c1", p.Session); err != nil || !ok {
		t.Fatalf("disconnect = %v, %v", ok, err)
	}
	if r := mustAdd(t, s, 10, NewMessage("c1", "m5"))[0]; r.Presence.Online() {
		t.Fatalf("append after disconnect read presence %+v", r.Presence)
	}
}

// testAppendBadInput: a call with a message no store can take is refused as a whole,
// before anything is written.
func testAppendBadInput(t *testing.T, s store.Store) {
	good := NewMessage("c1", "good")
	for name, edit := range map[string]func(*store.Message){
		"no recipient": func(m *store.Message) { m.To = "" },
		"no id":        func(m *store.Message) { m.ID = "" },
		"no TTL":       func(m *store.Message) { m.TTL = 0 },
		"negative TTL": func(m *store.Message) { m.TTL = -time.Second },
	} {
		bad := NewMessage("c1", "bad")
		edit(&bad)
		if res, err := s.Append(ctxT(t), 10, []store.Message{good, bad}); err == nil {
			t.Errorf("append with %s accepted: %+v", name, res)
		}
	}
	if res, err := s.Append(ctxT(t), 0, []store.Message{good}); err == nil {
		t.Errorf("append with limit 0 accepted: %+v", res)
	}
	checkDepth(t, s, "c1", 0)
}

// testRemoveAnywhere: Remove deletes the named messages wherever they are, ignores ids
// that are not there, and touches no other client's messages.
func testRemoveAnywhere(t *testing.T, s store.Store) {
	msgs := messages("c1", "", 0, 5) // 0000 ... 0004
	res := mustAdd(t, s, 10, msgs...)
	rm := func(ids ...string) {
		t.Helper()
		mustRemove(t, s, store.Removal{Client: "c1", IDs: ids})
	}
	rm("0002") // the middle
	peekIDs(t, s, "c1", 0, "0000", "0001", "0003", "0004")
	checkDepth(t, s, "c1", 4)
	rm("0004", "unknown") // the tail, and an id never appended
	peekIDs(t, s, "c1", 0, "0000", "0001", "0003")
	rm("0002", "0004") // again: nothing changes
	peekIDs(t, s, "c1", 0, "0000", "0001", "0003")
	rm("0000") // the head
	peekIDs(t, s, "c1", 0, "0001", "0003")
	checkDepth(t, s, "c1", 2)
	mustRemove(t, s)
	mustRemove(t, s, store.Removal{Client: "c1"})
	peekIDs(t, s, "c1", 0, "0001", "0003")

	// Several clients in one call; an id removed from one mailbox stays in another.
	mustAdd(t, s, 10, NewMessage("c2", "0001"), NewMessage("c2", "b"), NewMessage("c3", "0003"))
	mustRemove(t, s,
		store.Removal{Client: "c1", IDs: []string{"0001"}},
		store.Removal{Client: "c2", IDs: []string{"b", "0003"}},
		store.Removal{Client: "c3", IDs: []string{"zzz"}})
	peekIDs(t, s, "c1", 0, "0003")
	peekIDs(t, s, "c2", 0, "0001")
	peekIDs(t, s, "c3", 0, "0003")
	r := mustAdd(t, s, 10, NewMessage("c1", "0005"))[0]
	if r.Seq <= res[4].Seq || r.Depth != 2 {
		t.Fatalf("append after removals: %+v, want depth 2 and seq after %d", r, res[4].Seq)
	}
	peekIDs(t, s, "c1", 0, "0003", "0005")
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
		{ID: "id\x00with\xffbytes,1,", Topic: "t", Payload: []byte("2,99,1,"), QoS: 1},
		{ID: "large", Topic: "l", Payload: bytesOf(1<<20, 0xa5), QoS: 1},
	}
	for i := range cases {
		cases[i].To = "c1"
		cases[i].Accepted = accepted
		cases[i].TTL = time.Duration(i+1) * time.Hour
	}
	mustAdd(t, s, 100, cases[:2]...)
	for _, m := range cases[2:] {
		mustAdd(t, s, 100, m)
	}
	msgs := mustPeek(t, s, "c1", 0, 100)
	if len(msgs) != len(cases) {
		t.Fatalf("peek returned %d messages, want %d", len(msgs), len(cases))
	}
	for i := range cases {
		sameMessage(t, cases[i].ID, msgs[i], cases[i])
		if i > 0 && msgs[i].TTL <= cases[i-1].TTL {
			t.Fatalf("%s: TTL %v left of %v", cases[i].ID, msgs[i].TTL, cases[i].TTL)
		}
	}
	mustRemove(t, s, removal(cases[3]))
	peekIDs(t, s, "c1", 0, "all-bytes", "empty", "nil", "large")
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
		"ünïcødé", "日本語", "😀", "a}:q", "x:{c:a}", "a}:o", "a\x00"}
	sessions := map[string]string{}
	var all []store.Message
	for i, c := range clients {
		all = append(all, NewMessage(c, fmt.Sprint("for-", i)))
	}
	mustAdd(t, s, 10, all...)
	for i, c := range clients {
		p := NewPresence(c, fmt.Sprint("node-", i), int64(i))
		mustConnect(t, s, p)
		sessions[c] = p.Session
	}
	for i, c := range clients {
		msgs := mustPeek(t, s, c, 0, 10)
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
	// Removing one client's message touches no other's.
	mustRemove(t, s, store.Removal{Client: "a}", IDs: []string{"for-0", "for-1"}})
	checkDepth(t, s, "a}", 0)
	checkDepth(t, s, "a", 1)
	// Clearing one client's node touches no other.
	if n, err := s.ClearNode(ctx, "node-1", 1); err != nil || n != 1 {
		t.Fatalf("ClearNode(node-1) = %d, %v; want 1", n, err)
	}
	if p, _, _ := s.Lookup(ctx, "a"); !p.Online() {
		t.Fatal(`clearing "a}" cleared "a"`)
	}
}

func testConcurrentAppends(t *testing.T, s store.Store) {
	const writers, batches, each = 8, 25, 5
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			var last uint64
			for b := range batches {
				batch := messages("c1", fmt.Sprintf("w%d-", w), b*each, each)
				// Every batch is sent twice, as a retrying sender would.
				first, err := s.Append(ctx, writers*batches*each, batch)
				if err == nil {
					var again []store.AppendResult
					again, err = s.Append(ctx, writers*batches*each, batch)
					err = errors.Join(err, checkConcurrent(first, again, &last))
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d, batch %d: %w", w, b, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = writers * batches * each
	checkDepth(t, s, "c1", total)
	var got []store.Message
	var after uint64
	for {
		batch := mustPeek(t, s, "c1", after, 200)
		if len(batch) == 0 {
			break
		}
		got = append(got, batch...)
		after = batch[len(batch)-1].Seq
		mustRemove(t, s, removal(batch...))
	}
	seen := map[string]bool{}
	next := make([]int, writers) // each writer's messages stay in its order
	for _, m := range got {
		if seen[m.ID] {
			t.Fatalf("%s stored twice", m.ID)
		}
		seen[m.ID] = true
		var w, i int
		if _, err := fmt.Sscanf(m.ID, "w%d-%d", &w, &i); err != nil {
			t.Fatalf("unexpected id %q", m.ID)
		}
		if i != next[w] {
			t.Fatalf("writer %d: got message %d, want %d", w, i, next[w])
		}
		next[w]++
	}
	if len(seen) != total {
		t.Fatalf("%d distinct messages, want %d", len(seen), total)
	}
	checkDepth(t, s, "c1", 0)
}

// checkConcurrent checks one writer's batch: first added every message with growing
// sequence numbers after last, and again, its retry, found every one a duplicate.
func checkConcurrent(first, again []store.AppendResult, last *uint64) error {
	if len(first) != len(again) {
		return fmt.Errorf("%d and %d results", len(first), len(again))
	}
	for i := range first {
		f, a := first[i], again[i]
		switch {
		case f.Err != nil || a.Err != nil:
			return errors.Join(f.Err, a.Err)
		case f.Duplicate || f.Seq <= *last:
			return fmt.Errorf("message %d: %+v, want a new seq after %d", i, f, *last)
		case !a.Duplicate || a.Seq != f.Seq:
			return fmt.Errorf("retry of message %d: %+v, want Duplicate of seq %d", i, a, f.Seq)
		}
		*last = f.Seq
	}
	return nil
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
	kept := NewMessage("c1", "kept")
	mustAdd(t, s, 10, kept)
	notice := store.Notice{Kind: store.NoticeMailbox, Client: "c1"}
	if err := s.Notify(ctxT(t), "n1", notice); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]func() error{
		"Append": func() error {
			_, err := s.Append(ctx, 10, []store.Message{NewMessage("c1", "m"), NewMessage("c2", "m")})
			return err
		},
		"Peek":        func() error { _, err := s.Peek(ctx, "c1", 0, 10); return err },
		"Remove":      func() error { return s.Remove(ctx, removal(kept)) },
		"Lookup":      func() error { _, _, err := s.Lookup(ctx, "c1"); return err },
		"Depth":       func() error { _, err := s.Depth(ctx, "c1"); return err },
		"Notify":      func() error { return s.Notify(ctx, "n1", notice) },
		"TakeNotices": func() error { _, err := s.TakeNotices(ctx, "n1", 10); return err },
		"DoneNotices": func() error { return s.DoneNotices(ctx, "n1", math.MaxUint64) },
		"Connect":     func() error { _, err := s.Connect(ctx, NewPresence("c1", "n1", 1)); return err },
		"Reassert":    func() error { return s.Reassert(ctx, NewPresence("c1", "n1", 1)) },
		"ConfirmTakeover": func() error {
			return s.ConfirmTakeover(ctx, "c1", "s")
		},
	}
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s with a cancelled context succeeded", name)
		}
	}
	peekIDs(t, s, "c1", 0, "kept")
	checkDepth(t, s, "c2", 0)
	if got := mustTake(t, s, "n1", 10); len(got) != 1 {
		t.Fatalf("notices after calls with a cancelled context: %v, want the one", got)
	}
	lookupOffline(t, s, "c1")
}
