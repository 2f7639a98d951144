package storetest

import (
	"fmt"
	"maps"
	"testing"

	"github.com/switchboard-mqtt/switchboard/store"
)

// walk runs a whole Mailboxes walk in pages of n, failing the test if it takes more than
// calls calls, and returns each mailbox's depth (checking that a mailbox returned twice had
// the same depth both times).
func walk(t *testing.T, s store.Store, n, calls int) map[string]int {
	t.Helper()
	got := map[string]int{}
	cursor := ""
	for i := 0; ; i++ {
		if i == calls {
			t.Fatalf("mailboxes walk not done after %d calls of %d (cursor %q)", calls, n, cursor)
		}
		page, next, err := s.Mailboxes(ctxT(t), cursor, n)
		if err != nil {
			t.Fatalf("mailboxes from %q: %v", cursor, err)
		}
		if len(page) > max(n, 1) {
			t.Fatalf("mailboxes: a page of %d holds %d", n, len(page))
		}
		for _, m := range page {
			if d, ok := got[m.Client]; ok && d != m.Depth {
				t.Fatalf("mailbox %q returned twice, depth %d then %d", m.Client, d, m.Depth)
			}
			got[m.Client] = m.Depth
		}
		if next == "" {
			return got
		}
		cursor = next
	}
}

// testMailboxesWalk: a walk, in pages of any size, returns every non-empty mailbox with its
// depth, odd client ids included, and not one that was emptied.
func testMailboxesWalk(t *testing.T, s store.Store) {
	if got := walk(t, s, 10, 1000); len(got) != 0 {
		t.Fatalf("an empty store's walk returned %v", got)
	}
	want := map[string]int{}
	for i, client := range []string{"w1", "w2", "w3", "w:}{x", "wé/é", "w-emptied"} {
		depth := 1 + i*3
		mustAdd(t, s, 100, messages(client, "m", 0, depth)...)
		want[client] = depth
	}
	mustRemove(t, s, removal(messages("w-emptied", "m", 0, want["w-emptied"])...))
	delete(want, "w-emptied")
	mustRemove(t, s, removal(messages("w2", "m", 0, 2)...))
	want["w2"] -= 2
	for _, n := range []int{1, 2, 1000, 5000, 0} {
		// Redis examines n keys of every kind (about four per client here) per call.
		if got := walk(t, s, n, 10000); !maps.Equal(got, want) {
			t.Fatalf("walk in pages of %d: %v, want %v", n, got, want)
		}
	}
}

// testMailboxesWalkMany: a walk of more mailboxes than one page holds returns them all.
func testMailboxesWalkMany(t *testing.T, s store.Store) {
	var msgs []store.Message
	want := map[string]int{}
	for i := range 1500 {
		client := fmt.Sprintf("many-%04d", i)
		msgs = append(msgs, NewMessage(client, "only"))
		want[client] = 1
	}
	mustAdd(t, s, 10, msgs...)
	if got := walk(t, s, store.MaxMailboxesPage, 1000); !maps.Equal(got, want) {
		t.Fatalf("walk returned %d mailboxes, want %d", len(got), len(want))
	}
}

// testMailboxesBadCursor: a cursor the store did not make is refused, not misread.
func testMailboxesBadCursor(t *testing.T, s store.Store) {
	if _, _, err := s.Mailboxes(ctxT(t), "not a cursor!", 10); err == nil {
		t.Fatal("mailboxes with a cursor the store never made: no error")
	}
}
