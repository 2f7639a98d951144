package redisstore_test

// A TakeNotices whose reply does not come back in time must lose nothing.
// Version 1 popped the notices and kept a copy only for a go-redis retry of the same call;
// the lease Holder's next round is a new call, which never saw them. Now a take removes
// nothing, and only DoneNotices, once the node acted, removes what it confirms.

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// busyScript keeps Redis busy for about ms milliseconds (Redis runs one script at a time
// and reads no other client meanwhile, as during a slow command, a fork, or a stall).
const busyScript = `
local t0 = redis.call('TIME')
local s0 = tonumber(t0[1]) * 1000000 + tonumber(t0[2])
while true do
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000000 + tonumber(t[2]) - s0 > tonumber(ARGV[1]) * 1000 then break end
end
return 1
`

// TestTimedOutTakeKeepsItsNotices: a notice is stored; Redis stalls for a second; a
// take with a 300ms deadline (the Holder's deadline is the round start plus the lease)
// times out, but Redis runs it when the stall ends. The next take (the Holder's next
// round, a new call) returns the notice again, with the same sequence number, and keeps
// returning it until the node confirms it.
func TestTimedOutTakeKeepsItsNotices(t *testing.T) {
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	s := open(t, cfg)
	raw := rawClient(t, addr)
	ctx, cancel := testContext(t, 20*time.Second)
	defer cancel()
	// The node has taken notices before (its Holder does every interval).
	if _, err := s.TakeNotices(ctx, "node-1", 10); err != nil {
		t.Fatal(err)
	}
	n := store.Notice{Kind: store.NoticeRevoke, Client: "c", Session: "old-session"}
	if err := s.Notify(ctx, "node-1", n); err != nil {
		t.Fatal(err)
	}

	busy := make(chan error, 1)
	go func() { busy <- raw.Eval(ctx, busyScript, nil, 1000).Err() }()
	time.Sleep(100 * time.Millisecond) // Redis is inside the busy script by now

	tctx, tcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	got, err := s.TakeNotices(tctx, "node-1", 10)
	tcancel()
	if err == nil {
		t.Fatalf("the take during the stall did not time out (got %v); the test needs it to", got)
	}
	t.Logf("take during the stall: %v", err)
	if err := <-busy; err != nil {
		t.Fatalf("busy script: %v", err)
	}
	time.Sleep(100 * time.Millisecond)

	// The Holder's next round, and the one after: it acted on neither.
	var first store.Notice
	for round := range 2 {
		got, err = s.TakeNotices(ctx, "node-1", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !sameNotice(got[0], n) || (round > 0 && got[0] != first) {
			t.Fatalf("round %d: the next take returned %v, want the stored notice %v again", round, got, n)
		}
		first = got[0]
	}
	// A confirmation whose reply is lost too, retried: the notice is gone, once.
	for range 2 {
		if err := s.DoneNotices(ctx, "node-1", first.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.TakeNotices(ctx, "node-1", 10); err != nil || len(got) != 0 {
		t.Fatalf("take after done = %v, %v; want nothing", got, err)
	}
	if keys, err := raw.Keys(ctx, cfg.Prefix+":*taken*").Result(); err != nil || len(keys) != 0 {
		t.Fatalf("keys named taken: %v, %v; want none (no take writes)", keys, err)
	}
}
