package redisstore

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

func TestExpiryMillisRoundsUp(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want int64
	}{
		{time.UnixMilli(1700000000123), 1700000000123},
		{time.UnixMilli(1700000000123).Add(time.Nanosecond), 1700000000124},
		{time.UnixMilli(1700000000123).Add(999 * time.Microsecond), 1700000000124},
		{time.Unix(-5, 0), -5000},
		{time.Unix(-5, 500), -4999},
	} {
		if got := expiryMillis(c.t); got != c.want {
			t.Errorf("expiryMillis(%v) = %d, want %d", c.t, got, c.want)
		}
	}
}

func TestCodecHeaderIsScriptReadable(t *testing.T) {
	m := store.Message{ID: "x", To: "c", Expires: time.Unix(-5, 0)}
	if enc := string(encodeMessage(m)); !strings.HasPrefix(enc, "1,-5000,") {
		t.Fatalf("header of %q, want 1,-5000,", enc)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	good := string(encodeMessage(store.Message{ID: "id", To: "c", Payload: []byte("p"), Expires: time.Now()}))
	for _, v := range []string{"", "2,1,", "1,123", good[:len(good)-1], "1,5," + "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"} {
		if _, err := decodeMessage(v); err == nil {
			t.Errorf("decode(%q) succeeded", v)
		}
	}
}

func FuzzCodecRoundTrip(f *testing.F) {
	f.Add("id", "to", "a/b", []byte{0, 1, 255}, byte(1), int64(1700000000), int64(123), int64(1700003600), int64(999999999))
	f.Add("", "", "", []byte{}, byte(0), int64(-62135596800), int64(0), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, id, to, topic string, payload []byte, qos byte, as, ans, es, ens int64) {
		if ans < 0 || ans >= 1e9 || ens < 0 || ens >= 1e9 {
			t.Skip()
		}
		m := store.Message{ID: id, To: to, Topic: topic, Payload: payload, QoS: qos,
			Accepted: time.Unix(as, ans), Expires: time.Unix(es, ens)}
		got, err := decodeMessage(string(encodeMessage(m)))
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != m.ID || got.To != m.To || got.Topic != m.Topic || got.QoS != m.QoS ||
			!bytes.Equal(got.Payload, m.Payload) || !got.Accepted.Equal(m.Accepted) || !got.Expires.Equal(m.Expires) {
			t.Fatalf("round trip: %+v, want %+v", got, m)
		}
	})
}

func TestPresenceRoundTrip(t *testing.T) {
	for _, p := range []store.Presence{
		{Client: "c", Node: "n", Epoch: -3, Session: "s", Since: time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))},
		{Client: "c", Node: "n", Epoch: 1 << 62, Session: "s"},
	} {
		args, err := presenceArgs(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parsePresence(p.Client, args)
		if err != nil {
			t.Fatal(err)
		}
		if got.Client != p.Client || got.Node != p.Node || got.Epoch != p.Epoch || got.Session != p.Session || !got.Since.Equal(p.Since) {
			t.Fatalf("round trip: %+v, want %+v", got, p)
		}
	}
	if got, err := parsePresence("c", []any{nil, nil, nil, nil}); err != nil || got != (store.Presence{}) {
		t.Fatalf("absent presence: %+v, %v", got, err)
	}
}
