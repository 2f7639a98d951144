package wire

import (
	"context"
	"testing"
)

// BenchmarkDeliverPipelined measures Deliver round trips from many goroutines sharing one
// Conn, against a handler that answers at once; allocations count both ends.
func BenchmarkDeliverPipelined(b *testing.B) {
	ts := startServer(b, &fakeHandler{deliver: func(context.Context, Deliver) Result {
		return Result{Status: StatusDelivered}
	}}, ServerOptions{})
	c := dialT(b, ts.addr, DialOptions{})
	ctx := context.Background()
	d := Deliver{Epoch: 7, Client: "device-0001", Session: "s-1", ID: "msg-0001", Topic: "devices/0001/cmd", Payload: make([]byte, 128), QoS: 1, Expires: 1_700_000_000_000}
	b.SetParallelism(32) // many calls in flight, as the router has
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := c.Deliver(ctx, d)
			if err != nil || r.Status != StatusDelivered {
				b.Errorf("Deliver = %+v, %v", r, err)
				return
			}
		}
	})
}
