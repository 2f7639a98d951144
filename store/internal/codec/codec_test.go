package codec

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

func TestMessageRoundTrip(t *testing.T) {
	payload := make([]byte, 256)
	for i := range payload {
		payload[i] = byte(i)
	}
	now := time.Unix(1_800_000_000, 123456789).UTC()
	for _, m := range []store.Message{
		{ID: "m1", To: "c", Topic: "inbox/c", Payload: payload, QoS: 1, Accepted: now},
		{ID: "m2", To: "Ω/{x}", Topic: "t", Payload: []byte{}, QoS: 0, Accepted: now},
	} {
		d := NewDecoder(AppendMessage(nil, m))
		got := d.ReadMessage()
		if err := d.Done(); err != nil {
			t.Fatal(err)
		}
		if got.ID != m.ID || got.To != m.To || got.Topic != m.Topic || !bytes.Equal(got.Payload, m.Payload) ||
			got.Payload == nil || got.QoS != m.QoS || !got.Accepted.Equal(m.Accepted) {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func TestCorruptValues(t *testing.T) {
	good := AppendMessage(nil, store.Message{ID: "m", To: "c", Topic: "t", Payload: []byte("p"), QoS: 1})
	for name, v := range map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"huge len":  {0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		d := NewDecoder(v)
		d.ReadMessage()
		if err := d.Done(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}
