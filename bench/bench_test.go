package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

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
			payload := newPayload(64)
			writeStamp(payload, Stamp{SentNS: 12345, Stream: 1, Seq: 2})
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
			c := &Client{opts: ClientOptions{Version: version, OnMessage: func(m *Message) {
				st, _ := ParseStamp(m.Payload)
				sink.Add(int64(st.Seq))
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
	c := &Client{opts: ClientOptions{Version: 4}, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	c.wcond = sync.NewCond(&c.wmu)
	payload := newPayload(64)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for i := range b.N {
		writeStamp(payload, Stamp{SentNS: int64(i), Seq: uint32(i)})
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

func BenchmarkStamp(b *testing.B) {
	p := newPayload(64)
	for i := range b.N {
		writeStamp(p, Stamp{SentNS: int64(i), Stream: 3, Seq: uint32(i)})
		if _, err := ParseStamp(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(1)
		for pb.Next() {
			h.Record(d)
			d = d*7%time.Second + 1
		}
	})
}

// BenchmarkPubSubMochi is a whole round trip through a real in-process mochi broker:
// publisher client → broker → subscriber client, with acknowledgements, one pair.
func BenchmarkPubSubMochi(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			_, addr := startMochi(b)
			ctx := context.Background()
			var got atomic.Int64
			done := make(chan struct{}, 1)
			want := int64(b.N)
			sub, err := Dial(ctx, addr, ClientOptions{ID: "bs", OnMessage: func(*Message) {
				if got.Add(1) == want {
					done <- struct{}{}
				}
			}})
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			if err := sub.Subscribe(ctx, "b", qos); err != nil {
				b.Fatal(err)
			}
			sub.Start()
			pub, err := Dial(ctx, addr, ClientOptions{ID: "bp", MaxInflight: 256})
			if err != nil {
				b.Fatal(err)
			}
			defer pub.Close()
			pub.Start()
			payload := newPayload(64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				// Stay within mochi's per-subscriber queue (QoS 0 is dropped past it).
				for int64(i)-got.Load() > 1000 {
					time.Sleep(10 * time.Microsecond)
				}
				if _, err := pub.Publish(ctx, "b", payload, qos); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				b.Fatalf("%d of %d arrived", got.Load(), b.N)
			}
		})
	}
}
