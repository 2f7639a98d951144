package redisstore

import "testing"

// TestOrderPattern: a glob character in the prefix matches only itself, and every order
// key's client id reads back.
func TestOrderPattern(t *testing.T) {
	k := keys{prefix: `a*b?[c]\`}
	if got, want := k.orderPattern(), `a\*b\?\[c\]\\:{c:*}:o`; got != want {
		t.Fatalf("orderPattern = %q, want %q", got, want)
	}
	for _, id := range []string{"alice", "w:}{x", "é/é"} {
		if got, ok := k.clientOfOrder(k.order(id)); !ok || got != id {
			t.Errorf("clientOfOrder(order(%q)) = %q, %v", id, got, ok)
		}
	}
	for _, key := range []string{k.messages("alice"), "other:{c:YWxpY2U}:o", k.prefix + ":{c:!!}:o"} {
		if got, ok := k.clientOfOrder(key); ok {
			t.Errorf("clientOfOrder(%q) = %q, want no client", key, got)
		}
	}
}
