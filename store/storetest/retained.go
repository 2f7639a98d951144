package storetest

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// retainedTTL is the TTL of the retained messages the expiry test waits out.
const retainedTTL = 1500 * time.Millisecond

func mustSetRetained(t *testing.T, s store.Store, r store.Retained) uint64 {
	t.Helper()
	v, err := s.SetRetained(ctxT(t), r)
	if err != nil {
		t.Fatalf("set retained %.64q: %v", r.Topic, err)
	}
	if v == 0 {
		t.Fatalf("set retained %.64q: version 0", r.Topic)
	}
	return v
}

// mustRetained reads every retained message, checks that no topic comes twice, that each
// has a version and that no TTL is negative, and returns them by topic.
func mustRetained(t *testing.T, s store.Store) map[string]store.Retained {
	t.Helper()
	rs, err := s.Retained(ctxT(t))
	if err != nil {
		t.Fatalf("retained: %v", err)
	}
	out := make(map[string]store.Retained, len(rs))
	for _, r := range rs {
		if _, ok := out[r.Topic]; ok {
			t.Fatalf("retained: topic %.64q returned twice", r.Topic)
		}
		if r.TTL < 0 {
			t.Fatalf("retained %.64q: TTL %v", r.Topic, r.TTL)
		}
		if r.Version == 0 {
			t.Fatalf("retained %.64q: no version", r.Topic)
		}
		out[r.Topic] = r
	}
	return out
}

// checkRetained checks that got holds the topic's message with data and version.
func checkRetained(t *testing.T, got map[string]store.Retained, topic string, data []byte, version uint64) store.Retained {
	t.Helper()
	r, ok := got[topic]
	switch {
	case !ok:
		t.Fatalf("retained: topic %.64q missing (have %d topics)", topic, len(got))
	case !bytes.Equal(r.Data, data):
		t.Fatalf("retained %.64q: data %.64q, want %.64q", topic, r.Data, data)
	case r.Version != version:
		t.Fatalf("retained %.64q: version %d, want %d, the one its set returned", topic, r.Version, version)
	}
	return r
}

// testRetainedSetReplaceClear: a set is returned by Retained with the version it was
// given; a second set replaces it under a greater version; a clear removes it and takes a
// version too, as does the clear of a topic that holds nothing.
func testRetainedSetReplaceClear(t *testing.T, s store.Store) {
	if got := mustRetained(t, s); len(got) != 0 {
		t.Fatalf("retained of a fresh store: %v", got)
	}
	v1 := mustSetRetained(t, s, store.Retained{Topic: "a/b", Data: []byte("one"), Version: 1 << 60})
	if v1 == 1<<60 {
		t.Fatal("set retained returned the caller's version")
	}
	w := mustSetRetained(t, s, store.Retained{Topic: "a/c", Data: []byte("other")})
	got := mustRetained(t, s)
	if len(got) != 2 {
		t.Fatalf("retained: %d topics, want 2", len(got))
	}
	if r := checkRetained(t, got, "a/b", []byte("one"), v1); r.TTL != 0 {
		t.Fatalf("retained without expiry has TTL %v", r.TTL)
	}
	checkRetained(t, got, "a/c", []byte("other"), w)

	v2 := mustSetRetained(t, s, store.Retained{Topic: "a/b", Data: []byte("two")})
	if v2 <= w {
		t.Fatalf("replace: version %d, want more than %d", v2, w)
	}
	got = mustRetained(t, s)
	checkRetained(t, got, "a/b", []byte("two"), v2)
	checkRetained(t, got, "a/c", []byte("other"), w)

	v3 := mustSetRetained(t, s, store.Retained{Topic: "a/b", Data: []byte{}})
	if v3 <= v2 {
		t.Fatalf("clear: version %d, want more than %d", v3, v2)
	}
	got = mustRetained(t, s)
	if _, ok := got["a/b"]; ok || len(got) != 1 {
		t.Fatalf("retained after a clear: %v, want a/c alone", got)
	}
	v4 := mustSetRetained(t, s, store.Retained{Topic: "never/set"}) // nil Data: a clear
	if v4 <= v3 {
		t.Fatalf("clear of an empty topic: version %d, want more than %d", v4, v3)
	}
	v5 := mustSetRetained(t, s, store.Retained{Topic: "a/b", Data: []byte("three")})
	if v5 <= v4 {
		t.Fatalf("set after the clears: version %d, want more than %d", v5, v4)
	}
	checkRetained(t, mustRetained(t, s), "a/b", []byte("three"), v5)
}

// testRetainedDataRoundTrip: Data is opaque, any bytes; a topic and data at their limits
// are taken, and so are topics that differ only past the first bytes.
func testRetainedDataRoundTrip(t *testing.T, s store.Store) {
	long := strings.Repeat("t/", store.MaxRetainedTopic/2) + "x"
	if len(long) != store.MaxRetainedTopic {
		t.Fatalf("test topic of %d bytes", len(long))
	}
	big := bytes.Repeat([]byte("0123456789,\x00\xff"), store.MaxRetainedData/13+1)[:store.MaxRetainedData]
	cases := []store.Retained{
		{Topic: "bin", Data: []byte("1,2,3,\x00\x01\xfe\xff,")},
		{Topic: "a}:{b", Data: []byte("braces")},
		{Topic: "\x00\xff topic", Data: []byte("odd bytes")},
		{Topic: long, Data: []byte("long topic")},
		{Topic: long[:len(long)-1] + "y", Data: []byte("long topic, last byte differs")},
		{Topic: "big", Data: big},
	}
	versions := make([]uint64, len(cases))
	for i, r := range cases {
		versions[i] = mustSetRetained(t, s, r)
	}
	got := mustRetained(t, s)
	if len(got) != len(cases) {
		t.Fatalf("retained: %d topics, want %d", len(got), len(cases))
	}
	for i, r := range cases {
		checkRetained(t, got, r.Topic, r.Data, versions[i])
	}
}

// testRetainedVersionsIncrease: versions grow across topics, in the order of the calls,
// and concurrent sets never share one.
func testRetainedVersionsIncrease(t *testing.T, s store.Store) {
	var last uint64
	for i := range 20 {
		v := mustSetRetained(t, s, store.Retained{Topic: fmt.Sprintf("seq/%d", i%3), Data: []byte{byte(i)}})
		if v <= last {
			t.Fatalf("set %d: version %d after %d", i, v, last)
		}
		last = v
	}
	const workers, each = 4, 25
	var mu sync.Mutex
	seen := map[uint64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				topic := fmt.Sprintf("w%d/%d", w, i%5)
				v, err := s.SetRetained(ctxT(t), store.Retained{Topic: topic, Data: []byte(topic)})
				if err != nil {
					errs <- fmt.Errorf("set %q: %w", topic, err)
					return
				}
				mu.Lock()
				if other, dup := seen[v]; dup || v <= last {
					errs <- fmt.Errorf("set %q: version %d, also given to %q or not after %d", topic, v, other, last)
				}
				seen[v] = topic
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// testRetainedExpiry: a message lives for its TTL on the store's clock and is then gone,
// while a message without one stays, and so does one whose TTL a later set took away.
// Retained reports the time left, positive and never more than was given.
func testRetainedExpiry(t *testing.T, s store.Store) {
	short := mustSetRetained(t, s, store.Retained{Topic: "short", Data: []byte("s"), TTL: retainedTTL})
	mustSetRetained(t, s, store.Retained{Topic: "renewed", Data: []byte("r1"), TTL: retainedTTL})
	renewed := mustSetRetained(t, s, store.Retained{Topic: "renewed", Data: []byte("r2")})
	forever := mustSetRetained(t, s, store.Retained{Topic: "forever", Data: []byte("f")})
	long := mustSetRetained(t, s, store.Retained{Topic: "long", Data: []byte("l"), TTL: time.Hour})

	got := mustRetained(t, s)
	if r := checkRetained(t, got, "short", []byte("s"), short); r.TTL <= 0 || r.TTL > retainedTTL {
		t.Fatalf("short: TTL %v left, want more than 0 and at most %v", r.TTL, retainedTTL)
	}
	if r := checkRetained(t, got, "long", []byte("l"), long); r.TTL <= time.Hour-time.Minute || r.TTL > time.Hour {
		t.Fatalf("long: TTL %v left of an hour", r.TTL)
	}
	if r := checkRetained(t, got, "renewed", []byte("r2"), renewed); r.TTL != 0 {
		t.Fatalf("renewed without expiry: TTL %v", r.TTL)
	}

	start := time.Now()
	deadline := start.Add(retainedTTL + expireWithin)
	for {
		got = mustRetained(t, s)
		if _, ok := got["short"]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("short still retained %v after its TTL of %v", time.Since(start), retainedTTL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the %v message was gone after %v", retainedTTL, time.Since(start).Round(time.Millisecond))
	if len(got) != 3 {
		t.Fatalf("retained after the expiry: %d topics, want 3", len(got))
	}
	checkRetained(t, got, "renewed", []byte("r2"), renewed)
	checkRetained(t, got, "forever", []byte("f"), forever)
	checkRetained(t, got, "long", []byte("l"), long)
	// Gone for good: a second read, which no longer meets it, does not bring it back.
	if _, ok := mustRetained(t, s)["short"]; ok {
		t.Fatal("an expired retained message came back")
	}
	if v := mustSetRetained(t, s, store.Retained{Topic: "short", Data: []byte("s2")}); v <= long {
		t.Fatalf("set after the expiry: version %d, want more than %d", v, long)
	}
}

// testRetainedMany: many topics, more than one page of any backend's walk, are all
// returned once, each in its latest version, and clearing half leaves the other half.
func testRetainedMany(t *testing.T, s store.Store) {
	const n = 600
	versions := make([]uint64, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	const workers = 6
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				v, err := s.SetRetained(ctxT(t), store.Retained{Topic: manyTopic(i), Data: []byte(manyTopic(i))})
				if err != nil {
					errs <- fmt.Errorf("set %q: %w", manyTopic(i), err)
					return
				}
				versions[i] = v
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := mustRetained(t, s)
	if len(got) != n {
		t.Fatalf("retained: %d topics, want %d", len(got), n)
	}
	for i := range n {
		checkRetained(t, got, manyTopic(i), []byte(manyTopic(i)), versions[i])
	}
	for i := 0; i < n; i += 2 {
		mustSetRetained(t, s, store.Retained{Topic: manyTopic(i)})
	}
	got = mustRetained(t, s)
	if len(got) != n/2 {
		t.Fatalf("retained after clearing half: %d topics, want %d", len(got), n/2)
	}
	for i := 1; i < n; i += 2 {
		checkRetained(t, got, manyTopic(i), []byte(manyTopic(i)), versions[i])
	}
}

func manyTopic(i int) string { return fmt.Sprintf("sensors/%03d/temperature", i) }

// testRetainedBadInput: an empty or overlong topic, data over the limit and a negative
// TTL are refused with an error that says what is wrong, and nothing is stored.
func testRetainedBadInput(t *testing.T, s store.Store) {
	for _, c := range []struct {
		name string
		r    store.Retained
		says string
	}{
		{"empty topic", store.Retained{Data: []byte("x")}, "empty topic"},
		{"empty topic clear", store.Retained{}, "empty topic"},
		{"long topic", store.Retained{Topic: strings.Repeat("t", store.MaxRetainedTopic+1), Data: []byte("x")}, "topic of"},
		{"big data", store.Retained{Topic: "big", Data: make([]byte, store.MaxRetainedData+1)}, "data of"},
		{"negative TTL", store.Retained{Topic: "neg", Data: []byte("x"), TTL: -time.Second}, "negative TTL"},
	} {
		v, err := s.SetRetained(ctxT(t), c.r)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Fatalf("%s: set retained = %d, %v; want an error that says %q", c.name, v, err, c.says)
		}
	}
	if got := mustRetained(t, s); len(got) != 0 {
		t.Fatalf("retained after refused sets: %d topics", len(got))
	}
}
