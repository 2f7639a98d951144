package storetest

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

func mustNotify(t *testing.T, s store.Store, node string, ns ...store.Notice) {
	t.Helper()
	if err := s.Notify(ctxT(t), node, ns...); err != nil {
		t.Fatalf("notify %q of %v: %v", node, ns, err)
	}
}

// mustTake takes up to n of node's notices and checks that their sequence numbers are
// set and increasing.
func mustTake(t *testing.T, s store.Store, node string, n int) []store.Notice {
	t.Helper()
	ns, err := s.TakeNotices(ctxT(t), node, n)
	if err != nil {
		t.Fatalf("take %d notices of %q: %v", n, node, err)
	}
	if len(ns) > max(n, 0) {
		t.Fatalf("take %d notices of %q returned %d", n, node, len(ns))
	}
	for i, x := range ns {
		if x.Seq == 0 || (i > 0 && x.Seq <= ns[i-1].Seq) {
			t.Fatalf("take of %q: seq %d at %d of %v", node, x.Seq, i, noticeSeqs(ns))
		}
	}
	return ns
}

func mustDone(t *testing.T, s store.Store, node string, upTo uint64) {
	t.Helper()
	if err := s.DoneNotices(ctxT(t), node, upTo); err != nil {
		t.Fatalf("done notices of %q up to %d: %v", node, upTo, err)
	}
}

// checkNotices checks that got are the notices want as notified, in order: the same
// kind, client and session (the store sets Seq).
func checkNotices(t *testing.T, what string, got, want []store.Notice) {
	t.Helper()
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.Kind == w.Kind && g.Client == w.Client && g.Session == w.Session
	}
	if !same {
		t.Fatalf("%s: notices %+v, want %+v", what, got, want)
	}
}

// sameTake checks that got is exactly an earlier take, sequence numbers included.
func sameTake(t *testing.T, what string, got, earlier []store.Notice) {
	t.Helper()
	if len(got) != len(earlier) {
		t.Fatalf("%s: notices %+v, want %+v again", what, got, earlier)
	}
	for i := range got {
		if got[i] != earlier[i] {
			t.Fatalf("%s: notice %d is %+v, want %+v again", what, i, got[i], earlier[i])
		}
	}
}

func noticeSeqs(ns []store.Notice) []uint64 {
	out := make([]uint64, len(ns))
	for i, n := range ns {
		out[i] = n.Seq
	}
	return out
}

func mailboxNotice(client string) store.Notice {
	return store.Notice{Kind: store.NoticeMailbox, Client: client}
}

func revokeNotice(client, session string) store.Notice {
	return store.Notice{Kind: store.NoticeRevoke, Client: client, Session: session}
}

func testNoticesFIFO(t *testing.T, s store.Store) {
	want := []store.Notice{
		mailboxNotice("c1"),
		revokeNotice("c2", Session()),
		mailboxNotice("c}{3:\x00ü"),
		revokeNotice("c1", "s\x00\xff,1,"),
		mailboxNotice(string(bytesOf(300, 'x'))),
	}
	mustNotify(t, s, "n1", want[:2]...)
	mustNotify(t, s, "n1", want[2])
	mustNotify(t, s, "n1")
	mustNotify(t, s, "n1", want[3:]...)
	got := mustTake(t, s, "n1", 100)
	checkNotices(t, "take", got, want)
	sameTake(t, "take again before done", mustTake(t, s, "n1", 100), got)
	mustDone(t, s, "n1", got[len(got)-1].Seq)
	checkNotices(t, "take after done", mustTake(t, s, "n1", 100), nil)
	// New notices queue as before, numbered after the confirmed ones.
	mustNotify(t, s, "n1", want[1])
	more := mustTake(t, s, "n1", 100)
	checkNotices(t, "take after more", more, want[1:2])
	if more[0].Seq <= got[len(got)-1].Seq {
		t.Fatalf("new notice numbered %d, want more than the confirmed %d", more[0].Seq, got[len(got)-1].Seq)
	}
}

// testNoticesPerNode: each node has its own notices; confirming one node's removes no
// other's.
func testNoticesPerNode(t *testing.T, s store.Store) {
	nodes := []string{"n1", "n1}", "{n1}", "n1:notices", "n1:nseq", "n2", "日本", "n1\x00"}
	want := func(i int) []store.Notice {
		return []store.Notice{mailboxNotice(fmt.Sprint("for-", i)), revokeNotice(fmt.Sprint("for-", i), nodes[i])}
	}
	for i, n := range nodes {
		mustNotify(t, s, n, want(i)...)
	}
	for i, n := range nodes {
		checkNotices(t, "node "+n, mustTake(t, s, n, 10), want(i))
	}
	for i, n := range nodes {
		mustDone(t, s, n, math.MaxUint64)
		checkNotices(t, "node "+n+" after its done", mustTake(t, s, n, 10), nil)
		for j := i + 1; j < len(nodes); j++ {
			checkNotices(t, "node "+nodes[j]+" after done of "+n, mustTake(t, s, nodes[j], 10), want(j))
		}
	}
	checkNotices(t, "unknown node", mustTake(t, s, "never-notified", 10), nil)
	mustDone(t, s, "never-notified", math.MaxUint64)
}

func testTakeNoticesUpToMax(t *testing.T, s store.Store) {
	var all []store.Notice
	for i := range 5 {
		all = append(all, mailboxNotice(fmt.Sprint("c", i)))
	}
	mustNotify(t, s, "n1", all...)
	first := mustTake(t, s, "n1", 2)
	checkNotices(t, "take 2", first, all[:2])
	checkNotices(t, "take 0", mustTake(t, s, "n1", 0), nil)
	checkNotices(t, "take -1", mustTake(t, s, "n1", -1), nil)
	sameTake(t, "take 2 again", mustTake(t, s, "n1", 2), first)
	mustDone(t, s, "n1", first[1].Seq)
	checkNotices(t, "take 2 after done", mustTake(t, s, "n1", 2), all[2:4])
	rest := mustTake(t, s, "n1", 10)
	checkNotices(t, "take the rest", rest, all[2:])
	mustDone(t, s, "n1", rest[len(rest)-1].Seq)
	checkNotices(t, "take from empty", mustTake(t, s, "n1", 10), nil)
}

func testTakeNoticesAtMostAThousand(t *testing.T, s store.Store) {
	const total = 1200
	var all []store.Notice
	for i := range total {
		all = append(all, mailboxNotice(fmt.Sprint("c", i)))
	}
	for i := 0; i < total; i += 300 {
		mustNotify(t, s, "n1", all[i:i+300]...)
	}
	got := mustTake(t, s, "n1", 5000)
	checkNotices(t, "take 5000", got, all[:1000])
	mustDone(t, s, "n1", got[len(got)-1].Seq)
	checkNotices(t, "take the rest", mustTake(t, s, "n1", 5000), all[1000:])
}

// testNoticesReturnedUntilDone: a take whose answer the node never acted on (a lost
// reply, a node that crashed before acting) loses nothing: the next take returns the
// same notices, with the same numbers, until they are confirmed.
func testNoticesReturnedUntilDone(t *testing.T, s store.Store) {
	want := []store.Notice{revokeNotice("c1", "old"), mailboxNotice("c2"), mailboxNotice("c3")}
	mustNotify(t, s, "n1", want...)
	got := mustTake(t, s, "n1", 10)
	checkNotices(t, "take", got, want)
	for i := range 3 {
		sameTake(t, fmt.Sprint("take ", i, " without done"), mustTake(t, s, "n1", 10), got)
	}
	mustDone(t, s, "n1", got[0].Seq-1)
	sameTake(t, "take after a done below every notice", mustTake(t, s, "n1", 10), got)
	mustDone(t, s, "other-node", math.MaxUint64)
	sameTake(t, "take after another node's done", mustTake(t, s, "n1", 10), got)
}

// testDoneNoticesPrefix: DoneNotices removes exactly the notices numbered up to upTo, and
// a repeat removes nothing more.
func testDoneNoticesPrefix(t *testing.T, s store.Store) {
	var all []store.Notice
	for i := range 6 {
		all = append(all, revokeNotice(fmt.Sprint("c", i), Session()))
	}
	mustNotify(t, s, "n1", all[:4]...)
	mustNotify(t, s, "n1", all[4:]...)
	got := mustTake(t, s, "n1", 10)
	checkNotices(t, "take", got, all)
	mustDone(t, s, "n1", got[2].Seq)
	sameTake(t, "after done up to the third", mustTake(t, s, "n1", 10), got[3:])
	for _, upTo := range []uint64{got[2].Seq, got[1].Seq, 0, got[3].Seq - 1} {
		mustDone(t, s, "n1", upTo)
		sameTake(t, fmt.Sprint("after a repeated or lower done (", upTo, ")"), mustTake(t, s, "n1", 10), got[3:])
	}
	// A notice that arrives meanwhile is not confirmed by a done for older ones.
	mustNotify(t, s, "n1", mailboxNotice("late"))
	mustDone(t, s, "n1", got[5].Seq)
	late := mustTake(t, s, "n1", 10)
	checkNotices(t, "after done of all taken", late, []store.Notice{mailboxNotice("late")})
	mustDone(t, s, "n1", got[5].Seq)
	sameTake(t, "after a repeated done", mustTake(t, s, "n1", 10), late)
	mustDone(t, s, "n1", late[0].Seq)
	checkNotices(t, "after the last done", mustTake(t, s, "n1", 10), nil)
	mustDone(t, s, "n1", late[0].Seq)
	if err := s.DoneNotices(ctxT(t), "", 1); err == nil {
		t.Error("done for an empty node accepted")
	}
}

// testNoticeSeqsIncrease: sequence numbers increase in Notify order, across calls and
// after every notice was confirmed; a Seq given to Notify is ignored.
func testNoticeSeqsIncrease(t *testing.T, s store.Store) {
	preset := mailboxNotice("preset")
	preset.Seq = math.MaxUint64
	mustNotify(t, s, "n1", preset)
	low := mailboxNotice("low")
	low.Seq = 1
	mustNotify(t, s, "n1", low)
	for i := range 20 {
		mustNotify(t, s, "n1", mailboxNotice(fmt.Sprint("c", i)))
	}
	got := mustTake(t, s, "n1", 100) // mustTake checks the order
	if len(got) != 22 || got[0].Seq == math.MaxUint64 || got[1].Seq == 1 {
		t.Fatalf("take = %d notices, seqs %v; want 22, numbered by the store", len(got), noticeSeqs(got))
	}
	last := got[len(got)-1].Seq
	mustDone(t, s, "n1", last)
	// Numbering goes on after the node confirmed everything, and in another node.
	mustNotify(t, s, "n1", mailboxNotice("after"))
	mustNotify(t, s, "n2", mailboxNotice("elsewhere"))
	mustNotify(t, s, "n1", mailboxNotice("after 2"))
	next := mustTake(t, s, "n1", 10)
	if len(next) != 2 || next[0].Seq <= last {
		t.Fatalf("take after done = seqs %v, want 2 after %d", noticeSeqs(next), last)
	}
}

// testNoticesConcurrentNotify: while routers notify a node concurrently, the node (the one
// taker) taking and confirming as it goes sees every notice once, in each notifier's
// order, each numbered above everything it confirmed before.
func testNoticesConcurrentNotify(t *testing.T, s store.Store) {
	const notifiers, each, batch = 4, 150, 5
	var wg sync.WaitGroup
	errs := make(chan error, notifiers)
	for w := range notifiers {
		wg.Go(func() {
			for i := 0; i < each; i += batch {
				var ns []store.Notice
				for j := i; j < i+batch; j++ {
					ns = append(ns, revokeNotice(fmt.Sprint("w", w), fmt.Sprint(j)))
				}
				if err := s.Notify(ctxT(t), "n1", ns...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	next := map[string]int{} // notifier -> the index of its next notice
	seen, confirmed := 0, uint64(0)
	deadline := time.Now().Add(time.Minute)
	for seen < notifiers*each {
		if time.Now().After(deadline) {
			t.Fatalf("saw %d notices in a minute, want %d", seen, notifiers*each)
		}
		finished := false
		select {
		case <-done:
			finished = true
		default:
		}
		ns := mustTake(t, s, "n1", 7)
		if len(ns) == 0 {
			if finished {
				break
			}
			time.Sleep(time.Millisecond)
			continue
		}
		for _, n := range ns {
			if n.Seq <= confirmed {
				t.Fatalf("notice %+v numbered at or below the confirmed %d", n, confirmed)
			}
			if n.Session != fmt.Sprint(next[n.Client]) {
				t.Fatalf("notice %s of %s seen when %d was due", n.Session, n.Client, next[n.Client])
			}
			next[n.Client]++
			seen++
		}
		confirmed = ns[len(ns)-1].Seq
		mustDone(t, s, "n1", confirmed)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if seen != notifiers*each {
		t.Fatalf("saw %d notices, want %d", seen, notifiers*each)
	}
	checkNotices(t, "after all were confirmed", mustTake(t, s, "n1", 10), nil)
}

func testNotifyBadInput(t *testing.T, s store.Store) {
	for name, c := range map[string]struct {
		node string
		n    store.Notice
	}{
		"no node":      {"", mailboxNotice("c1")},
		"no client":    {"n1", mailboxNotice("")},
		"unknown kind": {"n1", store.Notice{Kind: 9, Client: "c1"}},
		"zero kind":    {"n1", store.Notice{Client: "c1"}},
	} {
		if err := s.Notify(ctxT(t), c.node, mailboxNotice("ok"), c.n); err == nil {
			t.Errorf("notify with %s accepted", name)
		}
	}
	checkNotices(t, "after refused notifies", mustTake(t, s, "n1", 10), nil)
	if _, err := s.TakeNotices(ctxT(t), "", 10); err == nil {
		t.Error("take for an empty node accepted")
	}
}
