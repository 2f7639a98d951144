package embedded_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/embedded"
)

// TestRetainedSurvivesRestart: retained messages, their versions and expiries, and the
// version counter survive a restart; a clear before it stays cleared.
func TestRetainedSurvivesRestart(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	ctx := testContext(t)
	first, err := embedded.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	set := func(s store.Store, r store.Retained) uint64 {
		t.Helper()
		v, err := s.SetRetained(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	kept := set(first, store.Retained{Topic: "a/b", Data: []byte("kept")})
	timed := set(first, store.Retained{Topic: "a/t", Data: []byte("timed"), TTL: time.Hour})
	set(first, store.Retained{Topic: "a/c", Data: []byte("cleared")})
	cleared := set(first, store.Retained{Topic: "a/c"})
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := open(t, cfg)
	rs, err := second.Retained(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.Retained{}
	for _, r := range rs {
		got[r.Topic] = r
	}
	if len(got) != 2 {
		t.Fatalf("retained after restart: %+v, want a/b and a/t", rs)
	}
	if r := got["a/b"]; !bytes.Equal(r.Data, []byte("kept")) || r.Version != kept || r.TTL != 0 {
		t.Fatalf("a/b after restart: %+v, want version %d and no expiry", r, kept)
	}
	if r := got["a/t"]; !bytes.Equal(r.Data, []byte("timed")) || r.Version != timed || r.TTL <= time.Hour-time.Minute || r.TTL > time.Hour {
		t.Fatalf("a/t after restart: %+v, want version %d and nearly an hour left", r, timed)
	}
	if v := set(second, store.Retained{Topic: "a/d", Data: []byte("new")}); v <= cleared {
		t.Fatalf("version after restart %d, want more than %d", v, cleared)
	}
}
