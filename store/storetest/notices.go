package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/switchboard-mqtt/switchboard/store"
)

func mustNotify(t *testing.T, s store.Store, node string, ns ...store.Notice) {
	t.Helper()
	if err := s.Notify(ctxT(t), node, ns...); err != nil {
		t.Fatalf("notify %q of %v: %v", node, ns, err)
	}
}

func mustTake(t *testing.T, s store.Store, node string, n int) []store.Notice {
	t.Helper()
	ns, err := s.TakeNotices(ctxT(t), node, n)
	if err != nil {
		t.Fatalf("take %d notices of %q: %v", n, node, err)
	}
	if len(ns) > max(n, 0) {
		t.Fatalf("take %d notices of %q returned %d", n, node, len(ns))
	}
	return ns
}

func checkNotices(t *testing.T, what string, got, want []store.Notice) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: notices %+v, want %+v", what, got, want)
	}
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
		revokeNotice("c1", "s\x00\xff"),
		mailboxNotice(string(bytesOf(300, 'x'))),
	}
	mustNotify(t, s, "n1", want[:2]...)
	mustNotify(t, s, "n1", want[2])
	mustNotify(t, s, "n1")
	mustNotify(t, s, "n1", want[3:]...)
	checkNotices(t, "take", mustTake(t, s, "n1", 100), want)
	checkNotices(t, "take again", mustTake(t, s, "n1", 100), nil)
	// Notices taken are gone; new ones queue as before.
	mustNotify(t, s, "n1", want[1])
	checkNotices(t, "take after more", mustTake(t, s, "n1", 100), want[1:2])
}

func testNoticesPerNode(t *testing.T, s store.Store) {
	nodes := []string{"n1", "n1}", "{n1}", "n1:notices", "n2", "日本", "n1\x00"}
	for i, n := range nodes {
		mustNotify(t, s, n, mailboxNotice(fmt.Sprint("for-", i)), revokeNotice(fmt.Sprint("for-", i), n))
	}
	for i, n := range nodes {
		want := []store.Notice{mailboxNotice(fmt.Sprint("for-", i)), revokeNotice(fmt.Sprint("for-", i), n)}
		checkNotices(t, "node "+n, mustTake(t, s, n, 10), want)
	}
	checkNotices(t, "unknown node", mustTake(t, s, "never-notified", 10), nil)
}

func testTakeNoticesUpToMax(t *testing.T, s store.Store) {
	var all []store.Notice
	for i := range 5 {
		all = append(all, mailboxNotice(fmt.Sprint("c", i)))
	}
	mustNotify(t, s, "n1", all...)
	checkNotices(t, "take 2", mustTake(t, s, "n1", 2), all[:2])
	checkNotices(t, "take 0", mustTake(t, s, "n1", 0), nil)
	checkNotices(t, "take -1", mustTake(t, s, "n1", -1), nil)
	checkNotices(t, "take 2 more", mustTake(t, s, "n1", 2), all[2:4])
	checkNotices(t, "take the rest", mustTake(t, s, "n1", 10), all[4:])
	checkNotices(t, "take from empty", mustTake(t, s, "n1", 10), nil)
}

// testNoticesTakenOnce: concurrent takers share the notices; none is taken twice or lost.
func testNoticesTakenOnce(t *testing.T, s store.Store) {
	const total, takers = 600, 4
	var all []store.Notice
	for i := range total {
		all = append(all, mailboxNotice(fmt.Sprint("c", i)))
	}
	for i := 0; i < total; i += 100 {
		mustNotify(t, s, "n1", all[i:i+100]...)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, takers)
	for range takers {
		wg.Go(func() {
			for {
				ns, err := s.TakeNotices(ctxT(t), "n1", 7)
				if err != nil {
					errs <- err
					return
				}
				if len(ns) == 0 {
					return
				}
				mu.Lock()
				for _, n := range ns {
					seen[n.Client]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, n := range all {
		if seen[n.Client] != 1 {
			t.Fatalf("notice for %s taken %d times", n.Client, seen[n.Client])
		}
	}
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
