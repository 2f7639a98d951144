package redisstore

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

func TestTTLMillisRoundsDown(t *testing.T) {
	for _, c := range []struct {
		ttl  time.Duration
		want int64
	}{
		{time.Hour, 3600000},
		{1500 * time.Microsecond, 1},
		{time.Millisecond, 1},
		{time.Nanosecond, 1},
		{2*time.Second - time.Nanosecond, 1999},
	} {
		if got := ttlMillis(c.ttl); got != c.want {
			t.Errorf("ttlMillis(%v) = %d, want %d", c.ttl, got, c.want)
		}
	}
}

// stored is m as the append script stores it: the header it writes, then the body.
func stored(m store.Message, exp int64, seq uint64) string {
	return codecVersion + "," + strconv.FormatInt(exp, 10) + "," + strconv.FormatUint(seq, 10) + "," + string(encodeBody(m))
}

func TestDecodeMessage(t *testing.T) {
	m := store.Message{ID: "x", To: "c", Topic: "t", Payload: []byte("2,1,1,"), QoS: 1,
		Accepted: time.Unix(1700000000, 5).UTC()}
	got, err := decodeMessage(stored(m, 1700000002500, 1700000000000123), 1700000000000)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != m.ID || got.To != m.To || got.Topic != m.Topic || !bytes.Equal(got.Payload, m.Payload) ||
		got.QoS != m.QoS || !got.Accepted.Equal(m.Accepted) {
		t.Fatalf("decoded %+v, want %+v", got, m)
	}
	if got.TTL != 2500*time.Millisecond || got.Seq != 1700000000000123 {
		t.Fatalf("TTL %v, seq %d; want 2.5s and 1700000000000123", got.TTL, got.Seq)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	good := stored(store.Message{ID: "id", To: "c", Payload: []byte("p")}, 5, 7)
	for _, v := range []string{"", "1,5,", "3,5,7,", "2,5", "2,5,7", "2,x,7,", "2,5,-7,", good[:len(good)-1],
		"2,5,7," + "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"} {
		if _, err := decodeMessage(v, 0); err == nil {
			t.Errorf("decode(%q) succeeded", v)
		}
	}
}

func FuzzCodecRoundTrip(f *testing.F) {
	f.Add("id", "to", "a/b", []byte{0, 1, 255}, byte(1), int64(1700000000), uint32(123), int64(1700003600123), uint64(1700000000000001))
	f.Add("", "", "", []byte{}, byte(0), int64(-62135596800), uint32(0), int64(0), uint64(0))
	f.Fuzz(func(t *testing.T, id, to, topic string, payload []byte, qos byte, as int64, ans uint32, exp int64, seq uint64) {
		m := store.Message{ID: id, To: to, Topic: topic, Payload: payload, QoS: qos,
			Accepted: time.Unix(as, int64(ans%1e9))}
		exp = max(exp, 0)
		got, err := decodeMessage(stored(m, exp, seq&(1<<53-1)), 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != m.ID || got.To != m.To || got.Topic != m.Topic || got.QoS != m.QoS ||
			!bytes.Equal(got.Payload, m.Payload) || !got.Accepted.Equal(m.Accepted) ||
			got.Seq != seq&(1<<53-1) || got.TTL != time.Duration(exp)*time.Millisecond {
			t.Fatalf("round trip: %+v, want %+v", got, m)
		}
	})
}

func TestNoticeRoundTrip(t *testing.T) {
	for _, n := range []store.Notice{
		{Kind: store.NoticeMailbox, Client: "c"},
		{Kind: store.NoticeRevoke, Client: "a}{\x00", Session: strings.Repeat("s", 200)},
		{Kind: 9, Client: "", Session: ""},
	} {
		got, err := decodeNotice(encodeNotice(n))
		if err != nil || got != n {
			t.Fatalf("round trip of %+v = %+v, %v", n, got, err)
		}
	}
	if v := encodeNotice(store.Notice{Kind: store.NoticeMailbox, Client: "c1"}); len(v) != 5 {
		t.Fatalf("a mailbox notice for c1 takes %d bytes, want 5", len(v))
	}
	for _, v := range []string{"", "\x01", "\x01\x05ab\x00", "\x01\x01a\x00x"} {
		if _, err := decodeNotice(v); err == nil {
			t.Errorf("decodeNotice(%q) succeeded", v)
		}
	}
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
