package router_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// ackingNode answers every message delivered at once, as a node whose clients all
// acknowledge immediately: what is left is the router's own cost.
type ackingNode struct{}

func (ackingNode) Deliver(_ context.Context, d wire.Deliver, reply func(int, wire.Result)) {
	for i := range d.Msgs {
		reply(i, wire.Result{Status: wire.StatusDelivered})
	}
}
func (ackingNode) Kick(context.Context, wire.Kick) wire.Result {
	return wire.Result{Status: wire.StatusDelivered}
}
func (ackingNode) Drain(context.Context, wire.Drain) wire.Result {
	return wire.Result{Status: wire.StatusDelivered}
}

// benchRouter is a router whose clients are all online on one node that acknowledges at
// once, with their routes cached: every request goes straight to the node.
func benchRouter(b *testing.B, clients int) (*router.Router, []string) {
	b.Helper()
	st := openStore(b)
	cl := newCluster(b)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := wire.NewServer(ackingNode{}, wire.ServerOptions{})
	go func() { _ = srv.Serve(l) }()
	b.Cleanup(func() { srv.Close() })
	m := coordtest.NewMember("bench-node")
	m.InternalAddr = l.Addr().String()
	reg, err := cl.c.Register(testenv.Context(b, 10*time.Second), m)
	if err != nil {
		b.Fatal(err)
	}
	status, _ := reg.Status()
	waitLive(b, cl.w, "bench-node", status.Epoch)
	ctx := testenv.Context(b, 30*time.Second)
	ids := make([]string, clients)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%04d", i)
		if _, err := st.Connect(ctx, store.Presence{Client: ids[i], Node: "bench-node", Epoch: status.Epoch,
			Session: "s-" + ids[i], Since: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	r := newRouter(b, st, cl.w, nil)
	return r, ids
}

// BenchmarkRouteBatch: one batch of 100 messages to 100 clients per op, through Route.
func BenchmarkRouteBatch(b *testing.B) {
	r, ids := benchRouter(b, 100)
	msgs := make([]router.Message, len(ids))
	for i, id := range ids {
		msgs[i] = router.Message{To: id, Topic: "inbox/" + id, Payload: bytes.Repeat([]byte("x"), 64), QoS: 1, TTL: time.Hour}
	}
	ctx := context.Background()
	r.Route(ctx, msgs, 0) // fills the route cache
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, o := range r.Route(ctx, msgs, 0) {
			if o.Err != nil || o.Status != router.Delivered {
				b.Fatalf("%+v", o)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/msg")
}

// BenchmarkHTTPBatch: the same through the HTTP handler, JSON in and out.
func BenchmarkHTTPBatch(b *testing.B) {
	r, ids := benchRouter(b, 100)
	h := r.Handler()
	var req router.BatchRequest
	payload := string(bytes.Repeat([]byte("x"), 64))
	for _, id := range ids {
		req.Messages = append(req.Messages, router.Request{To: id, Payload: &payload})
	}
	body, _ := json.Marshal(req)
	do := func() {
		rq := httptest.NewRequest("POST", "/v1/messages/batch", bytes.NewReader(body))
		rq.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, rq)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	do()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		do()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ids)), "ns/msg")
}
