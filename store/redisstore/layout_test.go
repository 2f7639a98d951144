package redisstore_test

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// TestKeyLayout checks the documented key names, the mailbox keys' expiry (pushed out,
// never pulled in) and that an abandoned mailbox vanishes once its messages expired.
func TestKeyLayout(t *testing.T) {
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	s := open(t, cfg)
	raw := rawClient(t, addr)
	ctx := t.Context()

	client := "a}:{b"
	tag := cfg.Prefix + ":{c:" + base64.RawURLEncoding.EncodeToString([]byte(client)) + "}:"
	late := storetest.NewMessage(client, "late")
	late.Expires = time.Now().Add(2 * time.Hour)
	early := storetest.NewMessage(client, "early")
	early.Expires = time.Now().Add(time.Hour)
	for _, m := range []store.Message{late, early} {
		if _, err := s.Append(ctx, m, 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Connect(ctx, storetest.NewPresence(client, "n1", 1)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{tag + "p", tag + "q", tag + "m"} {
		if n, err := raw.Exists(ctx, k).Result(); err != nil || n != 1 {
			t.Fatalf("key %q missing: %v", k, err)
		}
	}
	nodeKey := cfg.Prefix + ":{n:" + base64.RawURLEncoding.EncodeToString([]byte("n1")) + "}:clients"
	if ok, err := raw.SIsMember(ctx, nodeKey, client).Result(); err != nil || !ok {
		t.Fatalf("client not in the node index %q: %v", nodeKey, err)
	}
	for _, k := range []string{tag + "q", tag + "m"} {
		exp, err := raw.PExpireTime(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		want := late.Expires.Add(time.Minute)
		if d := time.UnixMilli(int64(exp / time.Millisecond)).Sub(want); d < -time.Millisecond || d > time.Millisecond {
			t.Fatalf("%s expires at %v, want %v (the latest message's expiry plus a minute)",
				k, time.UnixMilli(int64(exp/time.Millisecond)), want)
		}
	}
	if ttl, err := raw.PTTL(ctx, tag+"p").Result(); err != nil || ttl != -1 {
		t.Fatalf("presence has TTL %v, %v; want none", ttl, err)
	}

	// A mailbox whose only message expired a minute ago is deleted by Redis itself.
	gone := storetest.NewMessage("abandoned", "m")
	gone.Expires = time.Now().Add(-time.Minute + 300*time.Millisecond)
	if _, err := s.Append(ctx, gone, 10); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		n, err := s.Depth(ctx, "abandoned")
		if err == nil && n != 0 {
			return fmt.Errorf("depth %d", n)
		}
		return err
	})
}

// TestNodeIndexShrinks checks that clients that left a node leave its index, so the index
// of a long-running node does not grow with every client it ever served.
func TestNodeIndexShrinks(t *testing.T) {
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	s := open(t, cfg)
	raw := rawClient(t, addr)
	ctx := t.Context()
	nodeKey := func(n string) string {
		return cfg.Prefix + ":{n:" + base64.RawURLEncoding.EncodeToString([]byte(n)) + "}:clients"
	}
	a := storetest.NewPresence("a", "n1", 1)
	b := storetest.NewPresence("b", "n1", 1)
	for _, p := range []store.Presence{a, b} {
		if _, err := s.Connect(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.Disconnect(ctx, "a", a.Session); err != nil || !ok {
		t.Fatalf("disconnect: %v %v", ok, err)
	}
	if _, err := s.Connect(ctx, storetest.NewPresence("b", "n2", 1)); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.SCard(ctx, nodeKey("n1")).Result(); err != nil || n != 0 {
		t.Fatalf("n1's index holds %d clients, %v; want 0", n, err)
	}
	if got, err := raw.SMembers(ctx, nodeKey("n2")).Result(); err != nil || len(got) != 1 || got[0] != "b" {
		t.Fatalf("n2's index holds %v, %v; want [b]", got, err)
	}
}

// TestConnectRetryReportsFirstPrevious checks that Connect is idempotent: a second run for
// the same session, as a go-redis retry would do, reports the presence the first replaced.
func TestConnectRetryReportsFirstPrevious(t *testing.T) {
	s := open(t, testConfig(t, shared.Redis(t).Addr))
	ctx := t.Context()
	first := storetest.NewPresence("c1", "n1", 1)
	second := storetest.NewPresence("c1", "n2", 2)
	for _, p := range []store.Presence{first, second} {
		if _, err := s.Connect(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	prev, err := s.Connect(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	if prev.Session != first.Session || prev.Node != "n1" {
		t.Fatalf("repeated connect reported %+v, want the first presence", prev)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	addr := shared.Redis(t).Addr
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, err := redisstore.New(t.Context(), testConfig(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(t.Context(), storetest.NewMessage("c1", "m"), 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPeekReturnsAtMostAThousand(t *testing.T) {
	s := open(t, testConfig(t, shared.Redis(t).Addr))
	for i := range 1100 {
		if _, err := s.Append(t.Context(), storetest.NewMessage("c1", fmt.Sprint("m", i)), 2000); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := s.Peek(t.Context(), "c1", 5000)
	if err != nil || len(msgs) != 1000 || msgs[0].ID != "m0" || msgs[999].ID != "m999" {
		t.Fatalf("peek 5000 = %d messages, %v; want the first 1000", len(msgs), err)
	}
}
