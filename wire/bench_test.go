package wire

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkDeliver measures Deliver round trips (every message answered) from many
// goroutines sharing one Conn, against a handler answering each message at once from
// Deliver itself, with no Detail, as a node answers a delivered message. Allocations count
// both ends.
func BenchmarkDeliver(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("msgs=%d", n), func(b *testing.B) {
			ts := startServer(b, &fakeHandler{deliver: func(_ context.Context, d Deliver, reply func(int, Result)) {
				for i := range d.Msgs {
					reply(i, Result{Status: StatusDelivered})
				}
			}}, ServerOptions{})
			c := dialT(b, ts.addr, DialOptions{})
			d := Deliver{Epoch: 7, Client: "device-0001", Session: "s-1", Msgs: make([]Msg, n)}
			for i := range d.Msgs {
				d.Msgs[i] = Msg{ID: fmt.Sprintf("msg-%04d", i), Topic: "devices/0001/cmd", Payload: make([]byte, 128), QoS: 1, TTL: 60_000}
			}
			b.SetParallelism(32) // many requests in flight, as the router has
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := newRoundTripWaiter(n)
				for pb.Next() {
					c.Deliver(d, w.done)
					if err := w.wait(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// roundTripWaiter waits for the n outcomes of one Deliver at a time without allocating.
type roundTripWaiter struct {
	n    int64
	left atomic.Int64
	mu   sync.Mutex
	err  error // the first failure
	all  chan struct{}
}

func newRoundTripWaiter(n int) *roundTripWaiter {
	w := &roundTripWaiter{n: int64(n), all: make(chan struct{}, 1)}
	w.left.Store(w.n)
	return w
}

func (w *roundTripWaiter) done(i int, r Result, err error) {
	if err != nil || r.Status != StatusDelivered {
		w.mu.Lock()
		if w.err == nil {
			w.err = fmt.Errorf("message %d: %+v, %w", i, r, err)
		}
		w.mu.Unlock()
	}
	if w.left.Add(-1) == 0 {
		w.all <- struct{}{}
	}
}

func (w *roundTripWaiter) wait() error {
	<-w.all
	w.left.Store(w.n)
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.err
	w.err = nil
	return err
}
