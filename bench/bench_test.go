package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/mqttclient"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

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
			_, addr := testenv.StartMochi(b)
			ctx := context.Background()
			var got atomic.Int64
			done := make(chan struct{}, 1)
			want := int64(b.N)
			sub, err := mqttclient.Dial(ctx, addr, mqttclient.Options{ID: "bs", OnMessage: func(*mqttclient.Message) {
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
			pub, err := mqttclient.Dial(ctx, addr, mqttclient.Options{ID: "bp", MaxInflight: 256})
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
