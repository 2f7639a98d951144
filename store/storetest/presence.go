package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/switchboard-mqtt/switchboard/store"
)

func testConnectReturnsPrevious(t *testing.T, s store.Store) {
	first := NewPresence("c1", "n1", 1)
	if res := mustConnect(t, s, first); res.Prev.Online() || res.Prev != (store.Presence{}) || len(res.Pending) != 0 {
		t.Fatalf("first connect returned %+v, want the zero Presence and nothing pending", res)
	}
	second := NewPresence("c1", "n2", 7)
	res := mustConnect(t, s, second)
	samePresence(t, "second connect's previous", res.Prev, first)
	samePresences(t, "second connect's pending", res.Pending)
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

// testLookupAll: each client's result is what Lookup returns for it, in the order asked,
// and a bad id fails only its own.
func testLookupAll(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustAdd(t, s, 10, messages("c1", "m", 0, 2)...)
	on := NewPresence("c2", "n1", 3)
	mustConnect(t, s, on)
	clients := []string{"c1", "c2", "", "nobody", "c2"}
	got := s.LookupAll(ctx, clients)
	if len(got) != len(clients) {
		t.Fatalf("LookupAll of %d clients returned %d results", len(clients), len(got))
	}
	for i, c := range clients {
		if c == "" {
			if got[i].Err == nil {
				t.Errorf("LookupAll of an empty id succeeded: %+v", got[i])
			}
			continue
		}
		p, depth, err := s.Lookup(ctx, c)
		if err != nil || got[i].Err != nil {
			t.Fatalf("lookup of %q: %v; LookupAll: %v", c, err, got[i].Err)
		}
		samePresence(t, "LookupAll of "+c, got[i].Presence, p)
		if got[i].Depth != depth {
			t.Errorf("LookupAll of %q: depth %d, Lookup says %d", c, got[i].Depth, depth)
		}
	}
	if got[0].Depth != 2 || got[1].Presence.Session != on.Session {
		t.Fatalf("LookupAll: %+v", got)
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
	samePresence(t, "previous", mustConnect(t, s, newer).Prev, old)
	if ok, err := s.Disconnect(ctx, "c1", old.Session); err != nil || ok {
		t.Fatalf("late disconnect of the old session = %v, %v; want false, nil", ok, err)
	}
	got, _, err := s.Lookup(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	samePresence(t, "after late disconnect", got, newer)
}

// testReassert: the owner's Reassert sets the epoch and the node; a repeated one changes
// nothing more; another session's is refused and changes nothing.
func testReassert(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	p := NewPresence("c1", "n1", 1)
	mustConnect(t, s, p)
	again := p
	again.Epoch = 5
	for i := range 2 {
		if err := s.Reassert(ctx, again); err != nil {
			t.Fatalf("reassert %d: %v", i, err)
		}
	}
	lookupIs(t, s, "after reassert", again)
	stale := NewPresence("c1", "n1", 6)
	if err := s.Reassert(ctx, stale); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("reassert of another session: %v, want ErrNotOwner", err)
	}
	lookupIs(t, s, "after a refused reassert", again)

	moved := again
	moved.Node, moved.Epoch = "n2", 7
	if err := s.Reassert(ctx, moved); err != nil {
		t.Fatalf("reassert on another node: %v", err)
	}
	lookupIs(t, s, "after reassert on another node", moved)
	// The reaper finds the client under its new node only.
	if n, err := s.ClearNode(ctx, "n1", 5); err != nil || n != 0 {
		t.Fatalf("ClearNode of the old node = %d, %v; want 0", n, err)
	}
	if n, err := s.ClearNode(ctx, "n2", 7); err != nil || n != 1 {
		t.Fatalf("ClearNode of the new node = %d, %v; want 1", n, err)
	}
	lookupOffline(t, s, "c1")
}

// testReassertRecreates: a Reassert of a client with no presence (the reaper cleared it
// after the node left, or it was never recorded) records it, indexed under its node.
func testReassertRecreates(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	p := NewPresence("c1", "n1", 1)
	mustConnect(t, s, p)
	if n, err := s.ClearNode(ctx, "n1", 1); err != nil || n != 1 {
		t.Fatalf("ClearNode = %d, %v; want 1", n, err)
	}
	lookupOffline(t, s, "c1")
	p.Epoch = 2
	for i := range 2 {
		if err := s.Reassert(ctx, p); err != nil {
			t.Fatalf("reassert %d of a cleared presence: %v", i, err)
		}
	}
	lookupIs(t, s, "after reassert of a cleared presence", p)
	if res := mustAdd(t, s, 10, NewMessage("c1", "m")); res[0].Presence.Session != p.Session {
		t.Fatalf("append after reassert read presence %+v, want %+v", res[0].Presence, p)
	}
	// The recreated presence behaves as any: owned, disconnected, reaped.
	if err := s.ConfirmTakeover(ctx, "c1", p.Session); err != nil {
		t.Fatalf("confirm by the recreated session: %v", err)
	}
	if n, err := s.ClearNode(ctx, "n1", 2); err != nil || n != 1 {
		t.Fatalf("ClearNode of the recreated presence's epoch = %d, %v; want 1", n, err)
	}
	fresh := NewPresence("never-connected", "n3", 4)
	if err := s.Reassert(ctx, fresh); err != nil {
		t.Fatalf("reassert of a client never connected: %v", err)
	}
	lookupIs(t, s, "after reassert of a client never connected", fresh)
	if ok, err := s.Disconnect(ctx, fresh.Client, fresh.Session); err != nil || !ok {
		t.Fatalf("disconnect of the recreated presence = %v, %v; want true", ok, err)
	}
}

// testReassertTakenOver: a session whose presence another one replaced cannot take it
// back with Reassert, neither while the other owns it nor after the other left with its
// takeover unconfirmed.
func testReassertTakenOver(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	s1 := NewPresence("c1", "n1", 1)
	s2 := NewPresence("c1", "n2", 1)
	mustConnect(t, s, s1)
	mustConnect(t, s, s2)
	back := s1
	back.Epoch = 2
	if err := s.Reassert(ctx, back); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("reassert of a session taken over: %v, want ErrNotOwner", err)
	}
	lookupIs(t, s, "after the refused reassert", s2)
	mustDisconnect(t, s, s2)
	if err := s.Reassert(ctx, back); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("reassert of a session whose takeover is pending: %v, want ErrNotOwner", err)
	}
	lookupOffline(t, s, "c1")
	if res := mustConnect(t, s, NewPresence("c1", "n3", 1)); res.Prev.Online() {
		t.Fatalf("connect after the refused reassert: previous %+v, want none", res.Prev)
	} else {
		samePresences(t, "connect after the refused reassert: pending", res.Pending, s1)
	}
}

// testTakeoverChain: takeovers N1→N2 and N2→N3 unconfirmed; the Connect on N3 returns N2
// as Prev and N1 as pending; once N3's session confirms, the next Connect returns nothing
// pending.
func testTakeoverChain(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	s1 := NewPresence("c1", "n1", 1)
	s2 := NewPresence("c1", "n2", 1)
	s3 := NewPresence("c1", "n3", 1)
	s4 := NewPresence("c1", "n4", 1)
	mustConnect(t, s, s1)
	res := mustConnect(t, s, s2)
	samePresence(t, "N2's previous", res.Prev, s1)
	samePresences(t, "N2's pending", res.Pending)
	res = mustConnect(t, s, s3)
	samePresence(t, "N3's previous", res.Prev, s2)
	samePresences(t, "N3's pending", res.Pending, s1)
	if err := s.ConfirmTakeover(ctx, "c1", s3.Session); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	res = mustConnect(t, s, s4)
	samePresence(t, "N4's previous", res.Prev, s3)
	samePresences(t, "N4's pending after N3 confirmed", res.Pending)
	// N4 did not confirm: N5 is told about N3.
	res = mustConnect(t, s, NewPresence("c1", "n5", 1))
	samePresence(t, "N5's previous", res.Prev, s4)
	samePresences(t, "N5's pending", res.Pending, s3)
}

// testTakeoverSameNode: a presence replaced on its own node is not recorded as a pending
// takeover (the node takes its own session over), but pending ones are carried on.
func testTakeoverSameNode(t *testing.T, s store.Store) {
	s1 := NewPresence("c1", "n1", 1)
	s2 := NewPresence("c1", "n1", 1)
	s3 := NewPresence("c1", "n2", 1)
	s4 := NewPresence("c1", "n2", 1)
	s5 := NewPresence("c1", "n3", 1)
	mustConnect(t, s, s1)
	res := mustConnect(t, s, s2)
	samePresence(t, "same node's previous", res.Prev, s1)
	samePresences(t, "same node's pending", res.Pending)
	res = mustConnect(t, s, s3)
	samePresence(t, "N2's previous", res.Prev, s2)
	samePresences(t, "N2's pending", res.Pending)
	res = mustConnect(t, s, s4)
	samePresence(t, "N2 again: previous", res.Prev, s3)
	samePresences(t, "N2 again: pending", res.Pending, s2)
	res = mustConnect(t, s, s5)
	samePresence(t, "N3's previous", res.Prev, s4)
	samePresences(t, "N3's pending", res.Pending, s2)
}

// testConfirmTakeover: only the owner confirms; confirming twice is fine; a newer
// Connect carries on what an older session had not confirmed.
func testConfirmTakeover(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	if err := s.ConfirmTakeover(ctx, "nobody", "s"); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("confirm for an unknown client: %v, want ErrNotOwner", err)
	}
	if err := s.ConfirmTakeover(ctx, "", "s"); err == nil || errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("confirm for an empty client id: %v, want a refusal", err)
	}
	s1 := NewPresence("c1", "n1", 1)
	s2 := NewPresence("c1", "n2", 1)
	s3 := NewPresence("c1", "n3", 1)
	mustConnect(t, s, s1)
	if err := s.ConfirmTakeover(ctx, "c1", s1.Session); err != nil {
		t.Fatalf("confirm with nothing pending: %v", err)
	}
	mustConnect(t, s, s2)
	for _, session := range []string{s1.Session, "stale", ""} {
		if err := s.ConfirmTakeover(ctx, "c1", session); !errors.Is(err, store.ErrNotOwner) {
			t.Fatalf("confirm by %q, not the owner: %v, want ErrNotOwner", session, err)
		}
	}
	res := mustConnect(t, s, s3)
	if err := s.ConfirmTakeover(ctx, "c1", s2.Session); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("confirm by a session taken over since: %v, want ErrNotOwner", err)
	}
	samePresence(t, "N3's previous", res.Prev, s2)
	samePresences(t, "N3's pending", res.Pending, s1)
	for i := range 2 {
		if err := s.ConfirmTakeover(ctx, "c1", s3.Session); err != nil {
			t.Fatalf("confirm %d by the owner: %v", i, err)
		}
	}
	lookupIs(t, s, "after confirm", s3)
	res = mustConnect(t, s, NewPresence("c1", "n4", 1))
	samePresence(t, "N4's previous", res.Prev, s3)
	samePresences(t, "N4's pending", res.Pending)
}

// testDisconnectKeepsPending: a session that disconnects before it confirmed its takeover
// (a node that could not reach the old session's node refuses the connection and clears
// its presence) leaves the takeover pending for the next Connect. The record left is
// offline to every reader.
func testDisconnectKeepsPending(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	s1 := NewPresence("c1", "n1", 1)
	s2 := NewPresence("c1", "n2", 1)
	mustConnect(t, s, s1)
	mustConnect(t, s, s2)
	mustDisconnect(t, s, s2)
	lookupOffline(t, s, "c1")
	if res := mustAdd(t, s, 10, NewMessage("c1", "m")); res[0].Presence.Online() {
		t.Fatalf("append to a client with only pending takeovers read presence %+v, want offline", res[0].Presence)
	}
	for _, session := range []string{s1.Session, s2.Session} {
		if ok, err := s.Disconnect(ctx, "c1", session); err != nil || ok {
			t.Fatalf("disconnect by %s with no presence = %v, %v; want false", session, ok, err)
		}
		if err := s.ConfirmTakeover(ctx, "c1", session); !errors.Is(err, store.ErrNotOwner) {
			t.Fatalf("confirm with no presence: %v, want ErrNotOwner", err)
		}
	}
	s3 := NewPresence("c1", "n3", 1)
	res := mustConnect(t, s, s3)
	if res.Prev.Online() {
		t.Fatalf("connect after the disconnect: previous %+v, want none", res.Prev)
	}
	samePresences(t, "connect after the disconnect: pending", res.Pending, s1)
	// Still unconfirmed: the next one gets it too, and s3.
	res = mustConnect(t, s, NewPresence("c1", "n4", 1))
	samePresence(t, "N4's previous", res.Prev, s3)
	samePresences(t, "N4's pending", res.Pending, s1)
}

// testClearNodeKeepsPending: the reaper clears a presence whose takeover is unconfirmed,
// and leaves the takeover pending.
func testClearNodeKeepsPending(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	s1 := NewPresence("c1", "n1", 1)
	s2 := NewPresence("c1", "n2", 3)
	mustConnect(t, s, s1)
	mustConnect(t, s, s2)
	if n, err := s.ClearNode(ctx, "n2", 3); err != nil || n != 1 {
		t.Fatalf("ClearNode = %d, %v; want 1", n, err)
	}
	lookupOffline(t, s, "c1")
	if n, err := s.ClearNode(ctx, "n1", 1); err != nil || n != 0 {
		t.Fatalf("ClearNode of the pending takeover's node = %d, %v; want 0", n, err)
	}
	res := mustConnect(t, s, NewPresence("c1", "n3", 1))
	if res.Prev.Online() {
		t.Fatalf("connect after ClearNode: previous %+v, want none", res.Prev)
	}
	samePresences(t, "connect after ClearNode: pending", res.Pending, s1)
}

// testConnectRetrySameResult: a second Connect of the same session, as after a lost
// answer, returns what the first did and records nothing more.
func testConnectRetrySameResult(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	s1 := NewPresence("c1", "n1", 1)
	s2 := NewPresence("c1", "n2", 1)
	s3 := NewPresence("c1", "n3", 1)
	mustConnect(t, s, s1)
	mustConnect(t, s, s2)
	for i := range 3 {
		res := mustConnect(t, s, s3)
		samePresence(t, fmt.Sprint("connect ", i, ": previous"), res.Prev, s2)
		samePresences(t, fmt.Sprint("connect ", i, ": pending"), res.Pending, s1)
	}
	lookupIs(t, s, "after the repeated connects", s3)
	s4 := NewPresence("c1", "n4", 1)
	res := mustConnect(t, s, s4)
	samePresence(t, "N4's previous", res.Prev, s3)
	samePresences(t, "N4's pending", res.Pending, s1, s2)
	// Once confirmed, a repeat returns nothing pending.
	if err := s.ConfirmTakeover(ctx, "c1", s4.Session); err != nil {
		t.Fatal(err)
	}
	res = mustConnect(t, s, s4)
	samePresence(t, "N4's repeat after confirm: previous", res.Prev, s3)
	samePresences(t, "N4's repeat after confirm: pending", res.Pending)
}

// testPendingBounded: a client whose takeovers all stay unconfirmed gets at most
// MaxPending of them, the newest.
func testPendingBounded(t *testing.T, s store.Store) {
	const connects = store.MaxPending + 5
	var sessions []store.Presence
	for k := range connects {
		p := NewPresence("c1", fmt.Sprint("n", k), 1)
		res := mustConnect(t, s, p)
		if k > 0 {
			samePresence(t, fmt.Sprint("connect ", k, ": previous"), res.Prev, sessions[k-1])
		}
		if k > 1 {
			samePresences(t, fmt.Sprint("connect ", k, ": pending"), res.Pending,
				sessions[max(0, k-1-store.MaxPending):k-1]...)
		}
		sessions = append(sessions, p)
	}
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
	reasserted.Epoch = 2
	if err := s.Reassert(ctx, reasserted); err != nil {
		t.Fatal(err)
	}
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
		lookupOffline(t, s, c)
	}
	for _, want := range []store.Presence{other, newEpoch, moved, reasserted} {
		lookupIs(t, s, want.Client+" after ClearNode(n1, 1)", want)
	}
	if n, err := s.ClearNode(ctx, "n1", 1); err != nil || n != 0 {
		t.Fatalf("second ClearNode(n1, 1) = %d, %v; want 0", n, err)
	}
	// The clients still on n1 at epoch 2 are found when that epoch is cleared.
	if n, err := s.ClearNode(ctx, "n1", 2); err != nil || n != 2 {
		t.Fatalf("ClearNode(n1, 2) = %d, %v; want 2 (new-epoch and reasserted)", n, err)
	}
	lookupIs(t, s, "other after ClearNode(n1, 2)", other)
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
		lookupOffline(t, s, fmt.Sprint("c", i))
	}
}

func testPresenceBadInput(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	for name, p := range map[string]store.Presence{
		"no client":  {Node: "n1", Session: "s"},
		"no node":    {Client: "c1", Session: "s"},
		"no session": {Client: "c1", Node: "n1"},
	} {
		if _, err := s.Connect(ctx, p); err == nil {
			t.Errorf("connect with %s accepted", name)
		}
		if err := s.Reassert(ctx, p); err == nil || errors.Is(err, store.ErrNotOwner) {
			t.Errorf("reassert with %s: %v, want a refusal", name, err)
		}
	}
	lookupOffline(t, s, "c1")
}

func mustDisconnect(t *testing.T, s store.Store, p store.Presence) {
	t.Helper()
	if ok, err := s.Disconnect(ctxT(t), p.Client, p.Session); err != nil || !ok {
		t.Fatalf("disconnect %s of %q = %v, %v; want true", p.Session, p.Client, ok, err)
	}
}

// lookupIs checks that the client's presence is want.
func lookupIs(t *testing.T, s store.Store, what string, want store.Presence) {
	t.Helper()
	got, _, err := s.Lookup(ctxT(t), want.Client)
	if err != nil {
		t.Fatalf("%s: lookup: %v", what, err)
	}
	samePresence(t, what, got, want)
}

// lookupOffline checks that the client has no presence.
func lookupOffline(t *testing.T, s store.Store, client string) {
	t.Helper()
	if p, _, err := s.Lookup(ctxT(t), client); err != nil || p != (store.Presence{}) {
		t.Fatalf("lookup of %q = %+v, %v; want offline", client, p, err)
	}
}

// testConfirmAfterRecreate: a presence Reassert recorded anew returned no takeovers, so
// its session's ConfirmTakeover clears none: what an earlier Connect left pending stays
// for the next Connect.
func testConfirmAfterRecreate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	s1 := NewPresence("c1", "n1", 1)
	s2 := NewPresence("c1", "n2", 1)
	mustConnect(t, s, s1)
	mustConnect(t, s, s2)
	if n, err := s.ClearNode(ctx, "n2", 1); err != nil || n != 1 {
		t.Fatalf("ClearNode = %d, %v; want 1", n, err)
	}
	s2.Epoch = 2
	if err := s.Reassert(ctx, s2); err != nil {
		t.Fatalf("reassert of a cleared presence: %v", err)
	}
	if err := s.ConfirmTakeover(ctx, "c1", s2.Session); err != nil {
		t.Fatalf("confirm by the recreated session: %v", err)
	}
	res := mustConnect(t, s, NewPresence("c1", "n3", 1))
	samePresence(t, "N3's previous", res.Prev, s2)
	samePresences(t, "N3's pending", res.Pending, s1)
}
