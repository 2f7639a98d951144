package embedded

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

func TestSweepDeletesExpiredAnywhere(t *testing.T) {
	s := openT(t)
	ctx := ctxT(t)
	fill(t, s, []store.Message{
		storetest.NewMessage("c1", "live1"),
		expiredMessage("c1", "dead1"),
		storetest.NewMessage("c1", "live2"),
		expiredMessage("c1", "dead2"),
		expiredMessage("c2", "dead3"),
		storetest.NewMessage("c3", "live3"),
	})
	n, err := s.sweep(ctx, time.Now())
	if err != nil || n != 3 {
		t.Fatalf("sweep = %d, %v; want 3", n, err)
	}
	for client, want := range map[string]int{"c1": 2, "c2": 0, "c3": 1} {
		if d, err := s.Depth(ctx, client); err != nil || d != want {
			t.Fatalf("depth of %s after sweep = %d, %v; want %d", client, d, err, want)
		}
	}
	msgs, err := s.Peek(ctx, "c1", 0, 10)
	if err != nil || len(msgs) != 2 || msgs[0].ID != "live1" || msgs[1].ID != "live2" {
		t.Fatalf("peek after sweep = %v, %v; want live1, live2", msgs, err)
	}
	if n, err := s.sweep(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("second sweep = %d, %v; want 0", n, err)
	}
	// Once everything has expired, nothing is left behind in any bucket but the last
	// sequence number.
	if n, err := s.sweep(ctx, time.Now().Add(2*time.Hour)); err != nil || n != 3 {
		t.Fatalf("sweep two hours on = %d, %v; want 3", n, err)
	}
	for bucket, n := range count(t, s) {
		if want := map[string]int{"meta": 1}[bucket]; n != want {
			t.Errorf("bucket %s holds %d keys after everything expired, want %d", bucket, n, want)
		}
	}
}

func TestSweepInChunks(t *testing.T) {
	s := openT(t)
	const total = 2*sweepChunk + 10
	var msgs []store.Message
	for i := range total {
		msgs = append(msgs, expiredMessage(fmt.Sprint("c", i%7), fmt.Sprint("m", i)))
	}
	msgs = append(msgs, storetest.NewMessage("c0", "live"))
	fill(t, s, msgs)
	if n, err := s.sweep(ctxT(t), time.Now()); err != nil || n != total {
		t.Fatalf("sweep = %d, %v; want %d", n, err, total)
	}
	if d, err := s.Depth(ctxT(t), "c0"); err != nil || d != 1 {
		t.Fatalf("depth of c0 = %d, %v; want the live message only", d, err)
	}
}

func TestSweeperRuns(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.SweepInterval = 10 * time.Millisecond
	s, err := Open(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := storetest.NewMessage("c1", "soon")
	m.TTL = 50 * time.Millisecond
	if _, err := s.Append(ctxT(t), 10, []store.Message{m}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		d, err := s.Depth(ctxT(t), "c1")
		if err != nil {
			t.Fatal(err)
		}
		if d == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sweeper left the expired message: depth %d", d)
		}
	}
}

// TestNoticesExpire: a node's notices are dropped an hour after the last Notify if the
// node does not confirm them, by the sweeper or by the next take; a Notify keeps the
// queue for another hour, and a take does not.
func TestNoticesExpire(t *testing.T) {
	b := newNotices()
	now := time.Now()
	n := store.Notice{Kind: store.NoticeMailbox, Client: "c1"}
	b.add("n1", []store.Notice{n}, now)
	b.add("n2", []store.Notice{n}, now)
	b.add("n2", []store.Notice{n}, now.Add(30*time.Minute))
	b.sweep(now.Add(noticeKeep))
	if _, ok := b.nodes["n1"]; ok {
		t.Fatal("the sweep kept n1's notices an hour after the last")
	}
	got := b.take("n2", 10, now.Add(noticeKeep))
	if len(got) != 2 {
		t.Fatalf("n2's notices = %v, want both: the second Notify kept them", got)
	}
	if again := b.take("n2", 10, now.Add(noticeKeep+time.Minute)); len(again) != 2 || again[1] != got[1] {
		t.Fatalf("n2's notices taken again = %v, want the same two", again)
	}
	b.done("n2", got[1].Seq)
	b.add("n3", []store.Notice{n}, now)
	if got := b.take("n3", 10, now.Add(2*noticeKeep)); got != nil {
		t.Fatalf("take two hours on = %v, want nothing", got)
	}
	if len(b.nodes) != 0 {
		t.Fatalf("%d queues left, want none", len(b.nodes))
	}
}

// TestNoticeSeqsFollowTheClock: sequence numbers are at least the clock in microseconds,
// and keep growing when the clock steps back.
func TestNoticeSeqsFollowTheClock(t *testing.T) {
	b := newNotices()
	now := time.Now()
	n := store.Notice{Kind: store.NoticeMailbox, Client: "c1"}
	b.add("n1", []store.Notice{n, n}, now)
	b.add("n1", []store.Notice{n}, now.Add(-time.Minute))
	got := b.take("n1", 10, now)
	if len(got) != 3 || got[0].Seq != uint64(now.UnixMicro()) || got[1].Seq != got[0].Seq+1 || got[2].Seq != got[1].Seq+1 {
		t.Fatalf("seqs %v, want %d and the next two", got, now.UnixMicro())
	}
}
