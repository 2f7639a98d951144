package embedded

import (
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// highEntries is how many entries the high lane's index holds; -1 when its bucket was
// never created.
func highEntries(t *testing.T, s *Store) int {
	t.Helper()
	n := -1
	err := s.view(ctxT(t), func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketHigh); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func high(m store.Message) store.Message {
	m.Priority = store.PriorityHigh
	return m
}

// laneIDs reads one lane of client's mailbox, by id.
func laneIDs(t *testing.T, s *Store, client string, lane store.Priority) []string {
	t.Helper()
	peek := s.Peek
	if lane == store.PriorityHigh {
		peek = s.PeekHigh
	}
	msgs, err := peek(ctxT(t), client, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	return ids
}

// TestHighIndexFollowsMessages: a store that never took a high-priority message has no
// high index (so files from before it open unchanged), and afterwards the index names
// exactly the queued high-priority messages: its entry goes with each one deleted, by
// PeekHigh's delete of an expired head, Remove, a collapse, and the sweeper.
func TestHighIndexFollowsMessages(t *testing.T) {
	s := openT(t)
	ctx := ctxT(t)
	if _, err := s.Append(ctx, 10, []store.Message{storetest.NewMessage("c1", "n1")}); err != nil {
		t.Fatal(err)
	}
	if n := highEntries(t, s); n != -1 {
		t.Fatalf("a store with normal messages only has a high index of %d entries", n)
	}
	keyed := high(storetest.NewMessage("c1", "hk"))
	keyed.CollapseKey = "k"
	fill(t, s, []store.Message{
		high(expiredMessage("c1", "hx1")), high(storetest.NewMessage("c1", "h1")),
		high(expiredMessage("c1", "hx2")), high(storetest.NewMessage("c1", "h2")), keyed,
	})
	steps := []struct {
		what string
		do   func() error
		want int
	}{
		{"fill", func() error { return nil }, 5},
		{"peek high", func() error { _, err := s.PeekHigh(ctx, "c1", 0, 10); return err }, 4},
		{"remove", func() error { return s.Remove(ctx, store.Removal{Client: "c1", IDs: []string{"h1"}}) }, 3},
		{"collapse", func() error {
			m := storetest.NewMessage("c1", "nk")
			m.CollapseKey = "k"
			res, err := s.Append(ctx, 10, []store.Message{m})
			if err == nil && res[0].Collapsed != "hk" {
				t.Fatalf("append of nk: %+v, want hk collapsed", res[0])
			}
			return err
		}, 2},
		{"sweep", func() error { _, err := s.sweep(ctx, time.Now()); return err }, 1},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		if n := highEntries(t, s); n != st.want {
			t.Fatalf("after %s the high index holds %d entries, want %d", st.what, n, st.want)
		}
	}
	if d, err := s.Depth(ctx, "c1"); err != nil || d != 3 {
		t.Fatalf("depth %d, %v; want 3 (n1, h2, nk)", d, err)
	}
	if got := laneIDs(t, s, "c1", store.PriorityNormal); !slices.Equal(got, []string{"n1", "nk"}) {
		t.Fatalf("normal lane %v, want [n1 nk]", got)
	}
	if got := laneIDs(t, s, "c1", store.PriorityHigh); !slices.Equal(got, []string{"h2"}) {
		t.Fatalf("high lane %v, want [h2]", got)
	}
}

// TestLanesSurviveRestart: the lanes, their order and the shared numbering survive a
// restart of the store on its directory.
func TestLanesSurviveRestart(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	ctx := ctxT(t)
	first, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := first.Append(ctx, 10, []store.Message{storetest.NewMessage("c1", "n1"),
		high(storetest.NewMessage("c1", "h1")), storetest.NewMessage("c1", "n2"), high(storetest.NewMessage("c1", "h2"))})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if got := laneIDs(t, s, "c1", store.PriorityNormal); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Fatalf("normal lane after restart %v, want [n1 n2]", got)
	}
	if got := laneIDs(t, s, "c1", store.PriorityHigh); !slices.Equal(got, []string{"h1", "h2"}) {
		t.Fatalf("high lane after restart %v, want [h1 h2]", got)
	}
	again, err := s.Append(ctx, 10, []store.Message{storetest.NewMessage("c1", "h1"), high(storetest.NewMessage("c1", "h3"))})
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].Duplicate || again[0].Seq != res[1].Seq || again[1].Seq <= res[3].Seq {
		t.Fatalf("append after restart: %+v; want h1 a duplicate (seq %d) and h3 after %d", again, res[1].Seq, res[3].Seq)
	}
}
