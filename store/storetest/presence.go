package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/switchboard-mqtt/switchboard/store"
)

func testConnectReturnsPrevious(t *testing.T, s store.Store) {
	first := NewPresence("c1", "n1", 1)
	if prev := mustConnect(t, s, first); prev.Online() || prev != (store.Presence{}) {
		t.Fatalf("first connect returned %+v, want the zero Presence", prev)
	}
	second := NewPresence("c1", "n2", 7)
	samePresence(t, "second connect's previous", mustConnect(t, s, second), first)
	p, _, err := s.Lookup(ctxT(t), "c1")
	if err != nil {
		t.Fatal(err)
	}
	samePresence(t, "lookup after second connect", p, second)
}

func testLookup(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	p, depth, err := s.Lookup(ctx, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if p.Online() || depth != 0 {
		t.Fatalf("lookup of unknown client: %+v depth %d, want offline and 0", p, depth)
	}
	mustAdd(t, s, 10, messages("c1", "m", 0, 3)...)
	p, depth, err = s.Lookup(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Online() || depth != 3 {
		t.Fatalf("lookup of offline client with mail: %+v depth %d, want offline and 3", p, depth)
	}
	want := NewPresence("c1", "n1", 2)
	mustConnect(t, s, want)
	p, depth, err = s.Lookup(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	samePresence(t, "lookup", p, want)
	if depth != 3 {
		t.Fatalf("lookup depth %d, want 3", depth)
	}
}

func testDisconnect(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	p := NewPresence("c1", "n1", 1)
	mustConnect(t, s, p)
	if ok, err := s.Disconnect(ctx, "c1", "not-the-session"); err != nil || ok {
		t.Fatalf("disconnect with a foreign session = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s.Disconnect(ctx, "c1", p.Session); err != nil || !ok {
		t.Fatalf("disconnect = %v, %v; want true, nil", ok, err)
	}
	if got, _, err := s.Lookup(ctx, "c1"); err != nil || got.Online() {
		t.Fatalf("lookup after disconnect = %+v, %v; want offline", got, err)
	}
	if ok, err := s.Disconnect(ctx, "c1", p.Session); err != nil || ok {
		t.Fatalf("second disconnect = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s.Disconnect(ctx, "never-connected", p.Session); err != nil || ok {
		t.Fatalf("disconnect of unknown client = %v, %v; want false, nil", ok, err)
	}
}

func testLateDisconnect(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	old := NewPresence("c1", "n1", 1)
	mustConnect(t, s, old)
	newer := NewPresence("c1", "n2", 1)
	samePresence(t, "previous", mustConnect(t, s, newer), old)
	if ok, err := s.Disconnect(ctx, "c1", old.Session); err != nil || ok {
		t.Fatalf("late disconnect of the old session = %v, %v; want false, nil", ok, err)
	}
	got, _, err := s.Lookup(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	samePresence(t, "after late disconnect", got, newer)
}

func testReassert(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	p := NewPresence("c1", "n1", 1)
	mustConnect(t, s, p)
	if err := s.Reassert(ctx, "c1", p.Session, 5); err != nil {
		t.Fatalf("reassert: %v", err)
	}
	got, _, err := s.Lookup(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	p.Epoch = 5
	samePresence(t, "after reassert", got, p)
	if err := s.Reassert(ctx, "c1", "stale", 6); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("reassert with a stale session: %v, want ErrNotOwner", err)
	}
	if err := s.Reassert(ctx, "nobody", p.Session, 6); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("reassert of an offline client: %v, want ErrNotOwner", err)
	}
	got, _, _ = s.Lookup(ctx, "c1")
	samePresence(t, "after refused reasserts", got, p)
}

func testClearNode(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a := NewPresence("a", "n1", 1)
	b := NewPresence("b", "n1", 1)
	other := NewPresence("other", "n2", 1)
	newEpoch := NewPresence("new-epoch", "n1", 2)
	moved := NewPresence("moved", "n1", 1)
	reasserted := NewPresence("reasserted", "n1", 1)
	gone := NewPresence("gone", "n1", 1)
	for _, p := range []store.Presence{a, b, other, newEpoch, moved, reasserted, gone} {
		mustConnect(t, s, p)
	}
	moved = NewPresence("moved", "n2", 1)
	mustConnect(t, s, moved)
	if err := s.Reassert(ctx, "reasserted", reasserted.Session, 2); err != nil {
		t.Fatal(err)
	}
	reasserted.Epoch = 2
	if ok, err := s.Disconnect(ctx, "gone", gone.Session); err != nil || !ok {
		t.Fatalf("disconnect: %v, %v", ok, err)
	}

	n, err := s.ClearNode(ctx, "n1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("ClearNode(n1, 1) cleared %d, want 2 (a and b)", n)
	}
	for _, c := range []string{"a", "b", "gone"} {
		if p, _, err := s.Lookup(ctx, c); err != nil || p.Online() {
			t.Fatalf("%s after ClearNode: %+v, %v; want offline", c, p, err)
		}
	}
	for _, want := range []store.Presence{other, newEpoch, moved, reasserted} {
		got, _, err := s.Lookup(ctx, want.Client)
		if err != nil {
			t.Fatal(err)
		}
		samePresence(t, want.Client+" after ClearNode(n1, 1)", got, want)
	}
	if n, err := s.ClearNode(ctx, "n1", 1); err != nil || n != 0 {
		t.Fatalf("second ClearNode(n1, 1) = %d, %v; want 0", n, err)
	}
	// The clients still on n1 at epoch 2 are found when that epoch is cleared.
	if n, err := s.ClearNode(ctx, "n1", 2); err != nil || n != 2 {
		t.Fatalf("ClearNode(n1, 2) = %d, %v; want 2 (new-epoch and reasserted)", n, err)
	}
	got, _, _ := s.Lookup(ctx, "other")
	samePresence(t, "other after ClearNode(n1, 2)", got, other)
	if n, err := s.ClearNode(ctx, "unknown-node", 1); err != nil || n != 0 {
		t.Fatalf("ClearNode of an unknown node = %d, %v; want 0", n, err)
	}
}

func testClearNodeMany(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const clients = 700
	for i := range clients {
		mustConnect(t, s, NewPresence(fmt.Sprint("c", i), "n1", 3))
	}
	n, err := s.ClearNode(ctx, "n1", 3)
	if err != nil || n != clients {
		t.Fatalf("ClearNode = %d, %v; want %d", n, err, clients)
	}
	for i := range clients {
		if p, _, err := s.Lookup(ctx, fmt.Sprint("c", i)); err != nil || p.Online() {
			t.Fatalf("c%d after ClearNode: %+v, %v; want offline", i, p, err)
		}
	}
}
