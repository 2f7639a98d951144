package redisstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// tryAgain is the error Redis Cluster answers a multi-key command whose keys are split
// between two nodes while their slot migrates.
type tryAgain string

func (e tryAgain) Error() string { return string(e) }
func (tryAgain) RedisError()     {}

// holdFirstRun keeps the first script run of the first pipeline from reaching Redis and
// answers it TRYAGAIN, as Redis Cluster does to the first run of a client's Append when
// the slot's keys are split mid-migration while the next run, sent after a MIGRATE, is
// taken by the slot's new node.
type holdFirstRun struct{ done atomic.Bool }

func (h *holdFirstRun) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *holdFirstRun) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *holdFirstRun) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) < 2 || cmds[0].Name() != "evalsha" || !h.done.CompareAndSwap(false, true) {
			return next(ctx, cmds)
		}
		cmds[0].SetErr(tryAgain("TRYAGAIN Multiple keys request during rehashing of slot"))
		return next(ctx, cmds[1:])
	}
}

// TestChainedRunsKeepTheirOrder: an Append of more messages for one client than one
// script run takes goes in several runs of one pipeline; when Redis does not take the first
// at once (TRYAGAIN) but takes the second, the messages must still be stored in the order
// given — every message's sequence number above the one before it.
func TestChainedRunsKeepTheirOrder(t *testing.T) {
	s := open(t, testConfig(t, shared.Redis(t).Addr))
	hook := &holdFirstRun{}
	redisstore.AddHook(s, hook)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	const n = 200 // two runs: 128 and 72
	msgs := make([]store.Message, n)
	for i := range msgs {
		msgs[i] = storetest.NewMessage("chained", fmt.Sprint("m", i))
	}
	res, err := s.Append(ctx, 10_000, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if !hook.done.Load() {
		t.Fatal("the first run was never held back: the test did not test anything")
	}
	for i, r := range res {
		if r.Err != nil || r.Duplicate {
			t.Fatalf("message %d: %+v", i, r)
		}
		if i > 0 && r.Seq <= res[i-1].Seq {
			t.Fatalf("message %d has seq %d, not above message %d's %d: the second run was stored before the first",
				i, r.Seq, i-1, res[i-1].Seq)
		}
	}
	got, err := s.Peek(ctx, "chained", 0, n)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range got {
		if want := fmt.Sprint("m", i); m.ID != want {
			t.Fatalf("mailbox position %d holds %s, want %s", i, m.ID, want)
		}
	}
	if len(got) != n {
		t.Fatalf("mailbox holds %d messages, want %d", len(got), n)
	}
}
