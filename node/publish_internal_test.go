package node

import (
	"bufio"
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// decodePublish reads one PUBLISH the way a client's decoder does (mochi's codec).
func decodePublish(t *testing.T, b []byte, protocol byte) (packets.Packet, int) {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(b))
	first, err := r.ReadByte()
	if err != nil {
		t.Fatal(err)
	}
	var pk packets.Packet
	pk.ProtocolVersion = protocol
	if err := pk.FixedHeader.Decode(first); err != nil {
		t.Fatal(err)
	}
	n, used, err := packets.DecodeLength(r)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := r.Read(body); err != nil && n > 0 {
		t.Fatal(err)
	}
	pk.FixedHeader.Remaining = n
	if err := pk.PublishDecode(body); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return pk, 1 + used + n
}

func TestAppendPublishDecodesAsMQTT(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("x"), 300) // a two-byte remaining length
	for _, c := range []struct {
		name     string
		protocol byte
		qos      byte
		payload  []byte
		expiry   uint32
		subIDs   []int
	}{
		{"3.1.1 qos1", 4, 1, []byte("hello"), 30, nil},
		{"3.1.1 qos0", 4, 0, big, 0, nil},
		{"5 qos1 expiry", 5, 1, []byte("hello"), 86400, nil},
		{"5 qos0 no expiry", 5, 0, nil, 0, nil},
		{"5 qos1 large", 5, 1, big, 7, nil},
		{"5 qos1 subscription identifiers", 5, 1, []byte("hello"), 30, []int{1, 300, 268_435_455}},
		{"3.1.1 has no subscription identifiers", 4, 1, []byte("hello"), 30, []int{7}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := publishPacket{topic: "inbox/dev-1", payload: c.payload, qos: c.qos, pid: 4242, id: "0123abcd",
				expiry: c.expiry, protocol: c.protocol, subIDs: c.subIDs}
			prefix := []byte("before")
			b, err := appendPublish(prefix, p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b[:len(prefix)], prefix) {
				t.Fatal("appendPublish overwrote what was before it")
			}
			pk, size := decodePublish(t, b[len(prefix):], c.protocol)
			if size != len(b)-len(prefix) {
				t.Fatalf("packet is %d bytes, decoder used %d", len(b)-len(prefix), size)
			}
			if pk.TopicName != p.topic || !bytes.Equal(pk.Payload, c.payload) || pk.FixedHeader.Qos != c.qos {
				t.Fatalf("decoded %q %q qos %d", pk.TopicName, pk.Payload, pk.FixedHeader.Qos)
			}
			if c.qos > 0 && pk.PacketID != 4242 {
				t.Fatalf("packet id %d, want 4242", pk.PacketID)
			}
			if c.protocol == 5 {
				if len(pk.Properties.User) != 1 || pk.Properties.User[0].Key != MessageIDProperty || pk.Properties.User[0].Val != "0123abcd" {
					t.Fatalf("user properties %+v", pk.Properties.User)
				}
				if pk.Properties.MessageExpiryInterval != c.expiry {
					t.Fatalf("expiry %d, want %d", pk.Properties.MessageExpiryInterval, c.expiry)
				}
				if !slices.Equal(pk.Properties.SubscriptionIdentifier, c.subIDs) {
					t.Fatalf("subscription identifiers %v, want %v", pk.Properties.SubscriptionIdentifier, c.subIDs)
				}
			}
		})
	}
}

func TestAppendPublishRespectsMaximumPacketSize(t *testing.T) {
	t.Parallel()
	p := publishPacket{topic: "inbox/a", payload: bytes.Repeat([]byte("x"), 100), qos: 1, pid: 1, id: "i", protocol: 5}
	b, err := appendPublish(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	p.maxSize = uint32(len(b))
	if _, err := appendPublish(nil, p); err != nil {
		t.Fatalf("a packet of exactly the maximum size: %v", err)
	}
	p.maxSize--
	if out, err := appendPublish([]byte("keep"), p); !errors.Is(err, errTooLarge) || string(out) != "keep" {
		t.Fatalf("one byte over: %q, %v; want errTooLarge and nothing appended", out, err)
	}
}

// TestAppendPublishAllocatesOnce: encoding into an empty buffer allocates it once, at
// its final size, rather than growing it append by append. (Counted against encoding
// into a buffer large enough already, so that what the race detector adds cancels out.)
// Not parallel: testing.AllocsPerRun counts every goroutine's allocations.
func TestAppendPublishAllocatesOnce(t *testing.T) {
	p := publishPacket{
		topic: "inbox/some-client-id", payload: make([]byte, 200), qos: 1, pid: 7,
		id: "01JD0000000000000000000000", expiry: 60, protocol: 5, subIDs: []int{1, 300}, // sized up front too
	}
	count := func(buf func() []byte) float64 {
		return testing.AllocsPerRun(100, func() {
			if _, err := appendPublish(buf(), p); err != nil {
				t.Fatal(err)
			}
		})
	}
	room := make([]byte, 0, 1024)
	empty := count(func() []byte { return nil })
	roomy := count(func() []byte { return room[:0] })
	if empty-roomy != 1 {
		t.Fatalf("appendPublish into an empty buffer: %v allocations more than into a large one, want 1", empty-roomy)
	}
}
