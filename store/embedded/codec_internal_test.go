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
	for _, m := range []store.Message{
		{ID: "a", To: "c", Topic: "t/ä", Payload: []byte{0, 1, 255}, QoS: 2, Accepted: at, Expires: at.Add(time.Hour)},
		{ID: "id\x00\xff", To: "日本語", Payload: nil, Accepted: at, Expires: at},
		{ID: "old", To: "c", Payload: []byte{}, Accepted: time.Unix(-5, 7).UTC(), Expires: time.Unix(-1, 0).UTC()},
	} {
		v := encodeMessage(m)
		got, err := decodeMessage(v)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != m.ID || got.To != m.To || got.Topic != m.Topic || !bytes.Equal(got.Payload, m.Payload) ||
			got.QoS != m.QoS || !got.Accepted.Equal(m.Accepted) || !got.Expires.Equal(m.Expires) {
			t.Fatalf("round trip of %+v gave %+v", m, got)
		}
		if got.Payload == nil {
			t.Fatal("payload decoded as nil; want empty")
		}
		id, exp, err := messageMeta(v)
		if err != nil || id != m.ID || !exp.Equal(m.Expires) {
			t.Fatalf("messageMeta = %q, %v, %v; want %q, %v", id, exp, err, m.ID, m.Expires)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	since := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	r := record{
		cur:  store.Presence{Client: "c", Node: "n2", Epoch: -3, Session: "s2", Since: since},
		prev: store.Presence{Client: "c", Node: "n1", Epoch: 1 << 40, Session: "s1", Since: since.Add(-time.Hour)},
	}
	got, err := decodeRecord("c", encodeRecord(r))
	if err != nil {
		t.Fatal(err)
	}
	if got.cur != r.cur || got.prev.Session != r.prev.Session || !got.prev.Since.Equal(r.prev.Since) ||
		got.prev.Epoch != r.prev.Epoch || got.prev.Node != r.prev.Node {
		t.Fatalf("round trip of %+v gave %+v", r, got)
	}
	got, err = decodeRecord("c", encodeRecord(record{cur: r.cur}))
	if err != nil || got.prev != (store.Presence{}) {
		t.Fatalf("record without a previous presence gave prev %+v, %v; want the zero Presence", got.prev, err)
	}
}

func TestCorruptValues(t *testing.T) {
	good := encodeMessage(store.Message{ID: "a", To: "c", Payload: []byte("p"), Expires: time.Now()})
	for name, v := range map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, good[1:]...),
		"truncated": good[:len(good)-3],
		"trailing":  append(append([]byte{}, good...), 0),
		"length":    {formatVersion, 0xff, 0xff, 0x03},
	} {
		if _, err := decodeMessage(v); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: decodeMessage = %v, want errCorrupt", name, err)
		}
		if _, err := decodeRecord("c", v); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: decodeRecord = %v, want errCorrupt", name, err)
		}
	}
	if _, err := decodeMailbox([]byte{formatVersion, 1}); !errors.Is(err, errCorrupt) {
		t.Errorf("truncated mailbox: %v, want errCorrupt", err)
	}
	if b, err := decodeMailbox(encodeMailbox(mailbox{next: 1 << 40, depth: 7})); err != nil || b.next != 1<<40 || b.depth != 7 {
		t.Errorf("mailbox round trip = %+v, %v", b, err)
	}
}
