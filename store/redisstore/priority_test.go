package redisstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// TestHighLaneLayout checks the documented high lane: the oh sorted set, under the
// client's hash tag, holds the high message's id scored by its seq (and o does not); the
// body is in m, as a normal message's; and each lane's set expires at the latest expiry of
// the messages appended to it plus the grace, while m and seq expire with the latest of
// all.
func TestHighLaneLayout(t *testing.T) {
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	s := open(t, cfg)
	raw := rawClient(t, addr)
	ctx := t.Context()

	client := "a}:{b"
	tag := clientTag(cfg.Prefix, client)
	high := storetest.NewMessage(client, "high")
	high.Priority, high.TTL = store.PriorityHigh, 2*time.Hour
	before := redisTime(t, raw)
	highRes := appendOne(t, s, 10, high)
	afterHigh := redisTime(t, raw)
	normalRes := appendOne(t, s, 10, storetest.NewMessage(client, "normal")) // an hour
	after := redisTime(t, raw)

	if got, err := raw.Type(ctx, tag+"oh").Result(); err != nil || got != "zset" {
		t.Fatalf("key %q is a %q, %v; want a zset", tag+"oh", got, err)
	}
	oh, err := raw.ZRangeWithScores(ctx, tag+"oh", 0, -1).Result()
	if err != nil || len(oh) != 1 || oh[0].Member != "high" || uint64(oh[0].Score) != highRes.Seq {
		t.Fatalf("high set %+v, %v; want high scored by seq %d", oh, err, highRes.Seq)
	}
	o, err := raw.ZRangeWithScores(ctx, tag+"o", 0, -1).Result()
	if err != nil || len(o) != 1 || o[0].Member != "normal" || uint64(o[0].Score) != normalRes.Seq {
		t.Fatalf("order set %+v, %v; want normal alone, scored by seq %d", o, err, normalRes.Seq)
	}
	if n, err := raw.HLen(ctx, tag+"m").Result(); err != nil || n != 2 {
		t.Fatalf("messages hash holds %d, %v; want both lanes' 2", n, err)
	}
	for k, ttl := range map[string]time.Duration{"oh": 2 * time.Hour, "m": 2 * time.Hour, "seq": 2 * time.Hour} {
		exp, err := raw.PExpireTime(ctx, tag+k).Result()
		if err != nil {
			t.Fatal(err)
		}
		within(t, k+"'s expiry", exp.Milliseconds(),
			before.Add(ttl+keyGrace).Truncate(time.Millisecond), afterHigh.Add(ttl+keyGrace))
	}
	// o was made by the normal append, whose message lives an hour.
	exp, err := raw.PExpireTime(ctx, tag+"o").Result()
	if err != nil {
		t.Fatal(err)
	}
	within(t, "o's expiry", exp.Milliseconds(),
		afterHigh.Add(time.Hour+keyGrace).Truncate(time.Millisecond), after.Add(time.Hour+keyGrace))

	if err := s.Remove(ctx, store.Removal{Client: client, IDs: []string{"high"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Exists(ctx, tag+"oh").Result(); err != nil || n != 0 {
		t.Fatalf("high set left after its last id was removed: %d, %v", n, err)
	}
	if ok, err := raw.HExists(ctx, tag+"m", "high").Result(); err != nil || ok {
		t.Fatalf("removed high message still in the messages hash: %v, %v", ok, err)
	}
}

// TestAbandonedHighLaneVanishes: a mailbox that held only high-priority messages loses
// all its keys by itself once they expired, as a normal one does.
func TestAbandonedHighLaneVanishes(t *testing.T) {
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	s := open(t, cfg)
	redisstore.SetKeyGrace(s, 200*time.Millisecond)
	raw := rawClient(t, addr)
	tag := clientTag(cfg.Prefix, "abandoned")
	m := storetest.NewMessage("abandoned", "m")
	m.Priority, m.TTL = store.PriorityHigh, 300*time.Millisecond
	first := appendOne(t, s, 10, m)
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		n, err := raw.Exists(t.Context(), tag+"oh", tag+"o", tag+"m", tag+"seq").Result()
		if err == nil && n != 0 {
			return fmt.Errorf("%d of the mailbox's keys left", n)
		}
		return err
	})
	if again := appendOne(t, s, 10, m); again.Duplicate || again.Seq <= first.Seq {
		t.Fatalf("append after the keys expired: %+v, want a new seq after %d", again, first.Seq)
	}
}
