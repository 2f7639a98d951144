package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/switchboard-mqtt/switchboard/store"
)

// recordedEpochs reads every recorded pair, max at a time, checking that pages follow
// each other without repeats.
func recordedEpochs(t *testing.T, s store.Store, max int) []store.NodeEpoch {
	t.Helper()
	var all []store.NodeEpoch
	var after store.NodeEpoch
	for range 10_000 {
		page, err := s.RecordedEpochs(ctxT(t), after, max)
		if err != nil {
			t.Fatalf("recorded epochs after %v: %v", after, err)
		}
		if len(page) > max {
			t.Fatalf("recorded epochs returned %d pairs, asked for %d", len(page), max)
		}
		for _, ne := range page {
			if slices.Contains(all, ne) {
				t.Fatalf("recorded epochs returned %v twice: %v then %v", ne, all, page)
			}
		}
		all = append(all, page...)
		if len(page) < max {
			return all
		}
		after = page[len(page)-1]
	}
	t.Fatal("recorded epochs never ended")
	return nil
}

// testRecordedEpochs: the pairs Connect and Reassert recorded are listed (a page at a time
// or all at once), and ClearNode forgets the pair it cleared.
func testRecordedEpochs(t *testing.T, s store.Store) {
	if got := recordedEpochs(t, s, 10); len(got) != 0 {
		t.Fatalf("a fresh store lists %v", got)
	}
	mustConnect(t, s, NewPresence("c1", "n1", 1))
	mustConnect(t, s, NewPresence("c2", "n1", 1))
	mustConnect(t, s, NewPresence("c3", "n2", -5))
	c4 := NewPresence("c4", "n2", 5)
	mustConnect(t, s, c4)
	c4.Epoch = 6
	if err := s.Reassert(ctxT(t), c4); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		mustConnect(t, s, NewPresence(fmt.Sprint("x", i), fmt.Sprint("node\x00}{", i), int64(i)))
	}
	must := []store.NodeEpoch{{Node: "n1", Epoch: 1}, {Node: "n2", Epoch: -5}, {Node: "n2", Epoch: 6}}
	for i := range 5 {
		must = append(must, store.NodeEpoch{Node: fmt.Sprint("node\x00}{", i), Epoch: int64(i)})
	}
	all := recordedEpochs(t, s, store.MaxRecordedEpochs)
	for _, ne := range must {
		if !slices.Contains(all, ne) {
			t.Fatalf("recorded epochs %v lack %v", all, ne)
		}
	}
	// (n2, 5) had a presence until Reassert moved it: a store may still list it.
	for _, ne := range all {
		if !slices.Contains(must, ne) && ne != (store.NodeEpoch{Node: "n2", Epoch: 5}) {
			t.Fatalf("recorded epochs list %v, which no presence was recorded under", ne)
		}
	}
	for _, max := range []int{1, 2, 3} {
		if paged := recordedEpochs(t, s, max); !slices.Equal(paged, all) {
			t.Fatalf("%d at a time: %v; all at once: %v", max, paged, all)
		}
	}
	if n, err := s.ClearNode(ctxT(t), "n1", 1); err != nil || n != 2 {
		t.Fatalf("ClearNode(n1, 1) = %d, %v; want 2", n, err)
	}
	if n, err := s.ClearNode(ctxT(t), "n2", 5); err != nil || n != 0 {
		t.Fatalf("ClearNode(n2, 5) = %d, %v; want 0 (c4 moved to epoch 6)", n, err)
	}
	after := recordedEpochs(t, s, 10)
	for _, gone := range []store.NodeEpoch{{Node: "n1", Epoch: 1}, {Node: "n2", Epoch: 5}} {
		if slices.Contains(after, gone) {
			t.Fatalf("after ClearNode of %v, recorded epochs still list it: %v", gone, after)
		}
	}
	if !slices.Contains(after, store.NodeEpoch{Node: "n2", Epoch: 6}) || !slices.Contains(after, store.NodeEpoch{Node: "n2", Epoch: -5}) {
		t.Fatalf("after clearing n1@1, recorded epochs %v lack n2's live pairs", after)
	}
	if got, err := s.RecordedEpochs(ctxT(t), store.NodeEpoch{}, 0); err != nil || len(got) != 0 {
		t.Fatalf("RecordedEpochs with max 0 = %v, %v; want nothing", got, err)
	}
}
