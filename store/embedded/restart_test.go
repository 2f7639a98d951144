package embedded_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/embedded"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// TestRestartKeepsData closes a store and opens its directory again: presence, mailbox
// contents and order, what was acknowledged, the duplicate check and the numbering of new
// messages all survive.
func TestRestartKeepsData(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	ctx := testContext(t)
	first, err := embedded.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := storetest.NewPresence("c1", "n1", 3)
	if _, err := first.Connect(ctx, p); err != nil {
		t.Fatal(err)
	}
	var sent []store.Message
	for i := range 100 {
		m := storetest.NewMessage("c1", fmt.Sprintf("m%03d", i))
		m.Payload = fmt.Appendf(nil, "payload %d %x", i, make([]byte, i))
		if _, err := first.Append(ctx, m, 1000); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	if _, err := first.Ack(ctx, "c1", p.Session, []string{"m000", "m001"}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := open(t, cfg)
	got, depth, err := second.Lookup(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Node != p.Node || got.Epoch != p.Epoch || got.Session != p.Session || !got.Since.Equal(p.Since) {
		t.Fatalf("presence after restart %+v, want %+v", got, p)
	}
	if depth != 98 {
		t.Fatalf("depth after restart %d, want 98", depth)
	}
	msgs, err := second.Peek(ctx, "c1", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 98 {
		t.Fatalf("peek after restart returned %d messages, want 98", len(msgs))
	}
	for i, m := range msgs {
		want := sent[i+2]
		if m.ID != want.ID || m.To != want.To || m.Topic != want.Topic || m.QoS != want.QoS ||
			string(m.Payload) != string(want.Payload) || !m.Accepted.Equal(want.Accepted) || !m.Expires.Equal(want.Expires) {
			t.Fatalf("message %d after restart %+v, want %+v", i, m, want)
		}
	}
	if res, err := second.Append(ctx, sent[50], 1000); err != nil || !res.Duplicate {
		t.Fatalf("append of a stored id after restart = %+v, %v; want Duplicate", res, err)
	}
	res, err := second.Append(ctx, storetest.NewMessage("c1", "after"), 1000)
	if err != nil || res.Depth != 99 || res.Presence.Session != p.Session {
		t.Fatalf("append after restart = %+v, %v; want depth 99 and the presence", res, err)
	}
	msgs, err = second.Peek(ctx, "c1", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	if ids[len(ids)-1] != "after" || !slices.IsSorted(ids[:len(ids)-1]) {
		t.Fatalf("order after restart and append: %v", ids)
	}
	if left, err := second.Ack(ctx, "c1", p.Session, ids); err != nil || left != 0 {
		t.Fatalf("ack after restart with the old session = %d, %v; want 0", left, err)
	}
}
