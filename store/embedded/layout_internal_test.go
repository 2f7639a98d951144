package embedded

import (
	"bytes"
	"math"
	"testing"
	"time"
)

func TestNamesArePrefixFree(t *testing.T) {
	ids := []string{"", "a", "ab", "a\x00", "\x01a", string(make([]byte, 200)), string(make([]byte, 201))}
	for _, a := range ids {
		s, rest, ok := readName(append(name(a), "tail"...))
		if !ok || s != a || string(rest) != "tail" {
			t.Fatalf("readName(name(%q)+tail) = %q, %q, %v", a, s, rest, ok)
		}
		for _, b := range ids {
			if a != b && bytes.HasPrefix(seqKey(name(b), 0), name(a)) {
				t.Fatalf("a key of %q starts with the name of %q", b, a)
			}
		}
	}
	if _, _, ok := readName([]byte{5, 'a'}); ok {
		t.Fatal("readName accepted a name longer than its input")
	}
}

func TestKeysSortInOrder(t *testing.T) {
	c := name("c")
	if bytes.Compare(seqKey(c, 255), seqKey(c, 256)) >= 0 {
		t.Fatal("sequence keys out of order")
	}
	if bytes.Compare(nodeKey("n", -1, "c"), nodeKey("n", 0, "c")) >= 0 {
		t.Fatal("negative epochs sort after zero")
	}
	if !bytes.HasPrefix(nodeKey("n", 7, "c"), nodeEpochPrefix("n", 7)) || bytes.HasPrefix(nodeKey("n", 8, "c"), nodeEpochPrefix("n", 7)) {
		t.Fatal("nodeEpochPrefix does not select one epoch")
	}
	times := []time.Time{time.Unix(0, math.MinInt64).Add(-time.Hour), time.Unix(-1, 0), time.Unix(0, 0), time.Now(),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i := 1; i < len(times); i++ {
		if bytes.Compare(expiryKey(times[i-1], c, 9), expiryKey(times[i], c, 0)) >= 0 {
			t.Fatalf("expiry keys of %v and %v out of order", times[i-1], times[i])
		}
	}
	client, seq, ok := parseExpiryKey(expiryKey(time.Now(), c, 42))
	if !ok || !bytes.Equal(client, c) || seq != 42 {
		t.Fatalf("parseExpiryKey = %q, %d, %v", client, seq, ok)
	}
}

// TestExpiryBoundMatchesExpired: the sweeper deletes exactly the messages that expired
// reports, which are those Peek skips.
func TestExpiryBoundMatchesExpired(t *testing.T) {
	now := time.Now()
	bound := expiryBound(now)
	for _, d := range []time.Duration{-time.Hour, -1, 0, 1, time.Hour} {
		expires := now.Add(d)
		got := expiredKey(expiryKey(expires, name("c"), 1), bound)
		if want := expired(expires, now); got != want {
			t.Fatalf("expiry %v from now: swept %v, want %v", d, got, want)
		}
	}
	if expiryBound(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)) != nil {
		t.Fatal("a bound past the int64 range is not 'everything'")
	}
}
