package redisstore_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// TestRetainedLayout checks the documented retained keys: one hash of topic to
// "1,<expiry ms>,<version>,<data>" and one counter, the expiry Redis's clock plus the TTL
// (0 for none) and each version at least Redis's clock in µs; a clear deletes the field and
// moves the counter; versions keep growing when the counter is lost; Retained deletes the
// expired messages it meets and leaves a value it cannot read.
func TestRetainedLayout(t *testing.T) {
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	s := open(t, cfg)
	raw := rawClient(t, addr)
	ctx := t.Context()
	hash, counter := cfg.Prefix+":{r}:retained", cfg.Prefix+":{r}:rseq"

	before := redisTime(t, raw)
	v1, err := s.SetRetained(ctx, store.Retained{Topic: "a/b", Data: []byte("x,y"), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := s.SetRetained(ctx, store.Retained{Topic: "a/c", Data: []byte("z")})
	if err != nil {
		t.Fatal(err)
	}
	after := redisTime(t, raw)
	for k, typ := range map[string]string{hash: "hash", counter: "string"} {
		if got, err := raw.Type(ctx, k).Result(); err != nil || got != typ {
			t.Fatalf("key %q is a %q, %v; want a %s", k, got, err, typ)
		}
		if ttl, err := raw.PTTL(ctx, k).Result(); err != nil || ttl != -1 {
			t.Fatalf("key %q has TTL %v, %v; want none", k, ttl, err)
		}
	}
	if v1 < uint64(before.UnixMicro()) || v2 <= v1 || v2 > uint64(after.UnixMicro()) {
		t.Fatalf("versions %d, %d, want Redis's clock in µs (between %d and %d), increasing",
			v1, v2, before.UnixMicro(), after.UnixMicro())
	}
	if got, err := raw.Get(ctx, counter).Result(); err != nil || got != strconv.FormatUint(v2, 10) {
		t.Fatalf("counter %q, %v; want the last version %d", got, err, v2)
	}
	v, err := raw.HGet(ctx, hash, "a/b").Result()
	if err != nil {
		t.Fatal(err)
	}
	header := strings.SplitN(v, ",", 4)
	if len(header) != 4 || header[0] != "1" || header[2] != strconv.FormatUint(v1, 10) || header[3] != "x,y" {
		t.Fatalf("stored value %q, want 1,<expiry>,%d,x,y", v, v1)
	}
	exp, err := strconv.ParseInt(header[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	within(t, "the stored expiry", exp, before.Add(time.Hour).Truncate(time.Millisecond), after.Add(time.Hour))
	if v, err := raw.HGet(ctx, hash, "a/c").Result(); err != nil || v != "1,0,"+strconv.FormatUint(v2, 10)+",z" {
		t.Fatalf("stored value without expiry %q, %v", v, err)
	}

	v3, err := s.SetRetained(ctx, store.Retained{Topic: "a/c"})
	if err != nil || v3 <= v2 {
		t.Fatalf("clear = %d, %v; want a version above %d", v3, err, v2)
	}
	if ok, err := raw.HExists(ctx, hash, "a/c").Result(); err != nil || ok {
		t.Fatalf("cleared topic still in the hash: %v", err)
	}
	if err := raw.Del(ctx, counter).Err(); err != nil {
		t.Fatal(err)
	}
	if v4, err := s.SetRetained(ctx, store.Retained{Topic: "a/d", Data: []byte("w")}); err != nil || v4 <= v3 {
		t.Fatalf("set after the counter was lost = %d, %v; want more than %d", v4, err, v3)
	}

	// An expired message (written as a script would have, an expiry in the past) is never
	// returned and is deleted; an unreadable value is skipped and left.
	past := strconv.FormatInt(before.Add(-time.Second).UnixMilli(), 10)
	if err := raw.HSet(ctx, hash, "old", "1,"+past+",5,gone", "odd", "not a header").Err(); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Retained(ctx)
	if err != nil {
		t.Fatal(err)
	}
	topics := map[string]bool{}
	for _, r := range rs {
		topics[r.Topic] = true
	}
	if len(rs) != 2 || !topics["a/b"] || !topics["a/d"] {
		t.Fatalf("retained = %+v, want a/b and a/d", rs)
	}
	if ok, err := raw.HExists(ctx, hash, "old").Result(); err != nil || ok {
		t.Fatalf("expired message still in the hash after Retained: %v", err)
	}
	if ok, err := raw.HExists(ctx, hash, "odd").Result(); err != nil || !ok {
		t.Fatalf("unreadable value deleted: %v", err)
	}
}

// TestRetainedClusterOneSlot: on a cluster the retained hash and its counter are in one
// slot, so the script that changes both runs there.
func TestRetainedClusterOneSlot(t *testing.T) {
	c := sharedCluster(t)
	cfg := clusterConfig(t, c)
	s := open(t, cfg)
	rc := clusterRaw(t, c)
	ctx := t.Context()
	if _, err := s.SetRetained(ctx, store.Retained{Topic: "a/b", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	hash, counter := cfg.Prefix+":{r}:retained", cfg.Prefix+":{r}:rseq"
	s1, err1 := rc.ClusterKeySlot(ctx, hash).Result()
	s2, err2 := rc.ClusterKeySlot(ctx, counter).Result()
	if err1 != nil || err2 != nil || s1 != s2 {
		t.Fatalf("slots %d, %d (%v, %v); want one", s1, s2, err1, err2)
	}
	if n, err := rc.HLen(ctx, hash).Result(); err != nil || n != 1 {
		t.Fatalf("retained hash holds %d, %v; want 1", n, err)
	}
}
