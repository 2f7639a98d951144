package redisstore

import "testing"

// TestLanePattern: a glob character in the prefix matches only itself, and every lane
// key's client id reads back.
func TestLanePattern(t *testing.T) {
	k := keys{prefix: `a*b?[c]\`}
	if got, want := k.lanePattern(), `a\*b\?\[c\]\\:{c:*}:o*`; got != want {
		t.Fatalf("lanePattern = %q, want %q", got, want)
	}
	for _, id := range []string{"alice", "w:}{x", "é/é"} {
		for _, key := range []string{k.order(id), k.high(id)} {
			if got, ok := k.clientOfLane(key); !ok || got != id {
				t.Errorf("clientOfLane(%q) = %q, %v; want %q", key, got, ok, id)
			}
		}
	}
	for _, key := range []string{k.messages("alice"), "other:{c:YWxpY2U}:o", k.prefix + ":{c:!!}:o",
		k.prefix + ":{c:YWxpY2U}:ox"} {
		if got, ok := k.clientOfLane(key); ok {
			t.Errorf("clientOfLane(%q) = %q, want no client", key, got)
		}
	}
}
