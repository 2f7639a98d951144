package mqttclient

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The client's two hot paths, as the load generator drives them for every message. The
// message handler and the payload writer stand in for the generator's own (its latency
// stamp), so these measure the client alone.

// loopReader repeats one buffer forever.
type loopReader struct {
	buf []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.buf[r.off:])
	r.off = (r.off + n) % len(r.buf)
	return n, nil
}

// BenchmarkReadPublish is the receive path: read and decode a PUBLISH, parse its stamp and
// queue the PUBACK, as a subscriber does for every message.
func BenchmarkReadPublish(b *testing.B) {
	for _, version := range []byte{4, 5} {
		b.Run(fmt.Sprintf("v%d", version), func(b *testing.B) {
			payload := bytes.Repeat([]byte{'x'}, 64)
			binary.BigEndian.PutUint64(payload, 12345)
			pk := packets.Packet{
				FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: version,
				TopicName: "inbox/bench-0123abcd-42", PacketID: 7, Payload: payload,
			}
			if version == 5 {
				pk.Properties.User = []packets.UserProperty{{Key: "sb-id", Val: "0123456789abcdef0123456789abcdef"}}
			}
			var one bytes.Buffer
			if err := pk.PublishEncode(&one); err != nil {
				b.Fatal(err)
			}
			stream := bytes.Repeat(one.Bytes(), 256)
			var sink atomic.Int64
			c := &Client{opts: Options{Version: version, OnMessage: func(m *Message) {
				sink.Add(int64(binary.BigEndian.Uint64(m.Payload)))
			}}, r: bufio.NewReaderSize(&loopReader{buf: stream}, 16<<10)}
			b.SetBytes(int64(one.Len()))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := c.readPacket(); err != nil {
					b.Fatal(err)
				}
				if c.ack.Len() > 64<<10 {
					c.ack.Reset()
				}
			}
		})
	}
}

// BenchmarkQueuePublish is the send path: encode a PUBLISH onto the writer's buffer.
func BenchmarkQueuePublish(b *testing.B) {
	c := &Client{opts: Options{Version: 4}, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	c.wcond = sync.NewCond(&c.wmu)
	payload := bytes.Repeat([]byte{'x'}, 64)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for i := range b.N {
		binary.BigEndian.PutUint64(payload, uint64(i))
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "bench/x/1", Payload: payload}
		if err := c.queue(&pk); err != nil {
			b.Fatal(err)
		}
		if len(c.pending) > 64<<10 {
			c.pending = c.pending[:0]
		}
		select {
		case <-c.wake:
		default:
		}
	}
}
