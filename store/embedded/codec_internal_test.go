package embedded

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

func TestMessageRoundTrip(t *testing.T) {
	at := time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.UTC)
	for _, c := range []struct {
		m       store.Message
		expires time.Time
	}{
		{store.Message{ID: "a", To: "c", Topic: "t/ä", Payload: []byte{0, 1, 255}, QoS: 2, Accepted: at}, at.Add(time.Hour)},
		{store.Message{ID: "id\x00\xff", To: "日本語", Payload: nil, Accepted: at}, at},
		{store.Message{ID: "old", To: "c", Payload: []byte{}, Accepted: time.Unix(-5, 7).UTC()}, time.Unix(-1, 0).UTC()},
	} {
		m := c.m
		v := encodeMessage(m, c.expires)
		got, expires, err := decodeMessage(v)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != m.ID || got.To != m.To || got.Topic != m.Topic || !bytes.Equal(got.Payload, m.Payload) ||
			got.QoS != m.QoS || !got.Accepted.Equal(m.Accepted) || !expires.Equal(c.expires) {
			t.Fatalf("round trip of %+v, %v gave %+v, %v", m, c.expires, got, expires)
		}
		if got.Payload == nil {
			t.Fatal("payload decoded as nil; want empty")
		}
		id, exp, err := messageMeta(v)
		if err != nil || id != m.ID || !exp.Equal(c.expires) {
			t.Fatalf("messageMeta = %q, %v, %v; want %q, %v", id, exp, err, m.ID, c.expires)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	since := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	r := record{
		cur:      store.Presence{Client: "c", Node: "n2", Epoch: -3, Session: "s2", Since: since},
		prev:     store.Presence{Client: "c", Node: "n1", Epoch: 1 << 40, Session: "s1", Since: since.Add(-time.Hour)},
		returned: 1,
		left:     2,
		pending: []store.Presence{
			{Client: "c", Node: "n0", Epoch: 7, Session: "s0", Since: since.Add(-2 * time.Hour)},
			{Client: "c", Node: "n1", Epoch: 1 << 40, Session: "s1", Since: since.Add(-time.Hour)},
		},
	}
	got, err := decodeRecord("c", encodeRecord(r))
	if err != nil {
		t.Fatal(err)
	}
	if got.cur != r.cur || !samePresence(got.prev, r.prev) || got.returned != 1 || got.left != 2 || len(got.pending) != 2 ||
		!samePresence(got.pending[0], r.pending[0]) || !samePresence(got.pending[1], r.pending[1]) {
		t.Fatalf("round trip of %+v gave %+v", r, got)
	}
	got, err = decodeRecord("c", encodeRecord(record{cur: r.cur}))
	if err != nil || got.prev != (store.Presence{}) || len(got.pending) != 0 {
		t.Fatalf("record without a previous presence gave %+v, %v; want the zero Presence and nothing pending", got, err)
	}
	// A record holding only pending takeovers.
	got, err = decodeRecord("c", encodeRecord(record{pending: r.pending[:1]}))
	if err != nil || got.cur.Online() || len(got.pending) != 1 || !samePresence(got.pending[0], r.pending[0]) {
		t.Fatalf("record of pending takeovers only gave %+v, %v", got, err)
	}
	// A record of version 1: the current and the previous presence, nothing pending.
	v1 := appendPresence(appendPresence([]byte{formatVersion}, r.cur), r.prev)
	got, err = decodeRecord("c", v1)
	if err != nil || got.cur != r.cur || !samePresence(got.prev, r.prev) || len(got.pending) != 0 || got.returned != 0 {
		t.Fatalf("version 1 record gave %+v, %v", got, err)
	}
	// A record that claims more returned or left than pending, or a huge count, is corrupt.
	for _, at := range []int{3, 2} {
		bad := encodeRecord(record{cur: r.cur})
		bad[len(bad)-at] = 3
		if _, err := decodeRecord("c", bad); !errors.Is(err, errCorrupt) {
			t.Fatalf("record with 3 returned or left of none: %v, want errCorrupt", err)
		}
	}
	huge := append(appendPresence(appendPresence([]byte{presenceVersion}, r.cur), r.prev), 0, 0, 0xff, 0xff, 0xff, 0x0f)
	if _, err := decodeRecord("c", huge); !errors.Is(err, errCorrupt) {
		t.Fatalf("record with a huge count: %v, want errCorrupt", err)
	}
}

func samePresence(a, b store.Presence) bool {
	return a.Client == b.Client && a.Node == b.Node && a.Epoch == b.Epoch && a.Session == b.Session && a.Since.Equal(b.Since)
}

func TestCorruptValues(t *testing.T) {
	good := encodeMessage(store.Message{ID: "a", To: "c", Payload: []byte("p")}, time.Now())
	for name, v := range map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, good[1:]...),
		"truncated": good[:len(good)-3],
		"trailing":  append(append([]byte{}, good...), 0),
		"length":    {formatVersion, 0xff, 0xff, 0x03},
	} {
		if _, _, err := decodeMessage(v); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: decodeMessage = %v, want errCorrupt", name, err)
		}
		if _, err := decodeRecord("c", v); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: decodeRecord = %v, want errCorrupt", name, err)
		}
	}
	for name, v := range map[string][]byte{
		"empty":       nil,
		"version":     {9, 1},
		"truncated":   {mailboxVersion},
		"truncated 1": {formatVersion, 1},
		"trailing":    {mailboxVersion, 1, 0},
	} {
		if _, err := decodeMailbox(v); !errors.Is(err, errCorrupt) {
			t.Errorf("%s mailbox: %v, want errCorrupt", name, err)
		}
	}
	if b, err := decodeMailbox(encodeMailbox(mailbox{depth: 7})); err != nil || b.depth != 7 {
		t.Errorf("mailbox round trip = %+v, %v", b, err)
	}
	// A header of the first format, which also held a next sequence number, still reads.
	if b, err := decodeMailbox([]byte{formatVersion, 0x80, 0x01, 7}); err != nil || b.depth != 7 {
		t.Errorf("version 1 mailbox = %+v, %v; want depth 7", b, err)
	}
}
