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
// contents, order and sequence numbers, what was removed, the duplicate check and the
// numbering of new messages all survive.
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
		sent = append(sent, m)
	}
	res, err := first.Append(ctx, 1000, sent)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Remove(ctx, store.Removal{Client: "c1", IDs: []string{"m000", "m001"}}); err != nil {
		t.Fatal(err)
	}
	// A mailbox that emptied before the restart.
	gone, err := first.Append(ctx, 10, []store.Message{storetest.NewMessage("c2", "x")})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Remove(ctx, store.Removal{Client: "c2", IDs: []string{"x"}}); err != nil {
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
	msgs, err := second.Peek(ctx, "c1", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 98 {
		t.Fatalf("peek after restart returned %d messages, want 98", len(msgs))
	}
	for i, m := range msgs {
		want := sent[i+2]
		if m.ID != want.ID || m.To != want.To || m.Topic != want.Topic || m.QoS != want.QoS ||
			string(m.Payload) != string(want.Payload) || !m.Accepted.Equal(want.Accepted) ||
			m.Seq != res[i+2].Seq || m.TTL <= 0 || m.TTL > want.TTL {
			t.Fatalf("message %d after restart %+v, want %+v with seq %d", i, m, want, res[i+2].Seq)
		}
	}
	if res, err := second.Append(ctx, 1000, sent[50:51]); err != nil || !res[0].Duplicate || res[0].Seq != msgs[48].Seq {
		t.Fatalf("append of a stored id after restart = %+v, %v; want Duplicate of seq %d", res, err, msgs[48].Seq)
	}
	after, err := second.Append(ctx, 1000, []store.Message{storetest.NewMessage("c1", "after"), storetest.NewMessage("c2", "y")})
	if err != nil || after[0].Depth != 99 || after[0].Presence.Session != p.Session || after[0].Seq <= msgs[97].Seq {
		t.Fatalf("append after restart = %+v, %v; want depth 99, the presence and a seq after %d", after, err, msgs[97].Seq)
	}
	if after[1].Seq <= gone[0].Seq {
		t.Fatalf("c2's seq after restart %d, want more than the %d it had before", after[1].Seq, gone[0].Seq)
	}
	msgs, err = second.Peek(ctx, "c1", msgs[97].Seq, 1000)
	if err != nil || len(msgs) != 1 || msgs[0].ID != "after" {
		t.Fatalf("peek after the last seen before restart = %v, %v; want only after", msgs, err)
	}
	msgs, err = second.Peek(ctx, "c1", 0, 1000)
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
	if err := second.Remove(ctx, store.Removal{Client: "c1", IDs: ids}); err != nil {
		t.Fatal(err)
	}
	if d, err := second.Depth(ctx, "c1"); err != nil || d != 0 {
		t.Fatalf("depth after removing everything = %d, %v; want 0", d, err)
	}
}
