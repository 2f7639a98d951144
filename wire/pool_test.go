package wire

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	accepted atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return nc, err
}

func newPoolT(t *testing.T, opts DialOptions) *Pool {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	p := NewPool(opts)
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPoolSharesOneConn(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{Listener: inner}
	ts := serveOn(t, l, &fakeHandler{}, ServerOptions{Token: "t"})
	p := newPoolT(t, DialOptions{Token: "t"})
	ctx := testCtx(t)

	conns := make(chan *Conn, 20)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.Get(ctx, ts.addr)
			if err != nil {
				t.Errorf("Get: %v", err)
				return
			}
			conns <- c
		}()
	}
	wg.Wait()
	close(conns)
	var first *Conn
	for c := range conns {
		if first == nil {
			first = c
		}
		if c != first {
			t.Fatal("concurrent Gets returned different Conns")
		}
	}
	if n := l.accepted.Load(); n != 1 {
		t.Fatalf("%d connections dialed, want 1", n)
	}
	if r, err := first.Drain(ctx, Drain{Clients: []string{"x"}}); err != nil || r.Detail != "x" {
		t.Fatalf("Drain = %+v, %v", r, err)
	}
}

func TestPoolRedialsAfterServerRestart(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{})
	p := newPoolT(t, DialOptions{})
	ctx := testCtx(t)
	c1, err := p.Get(ctx, ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	ts.stop(t)
	<-c1.Done()
	if _, err := p.Get(ctx, ts.addr); err == nil {
		t.Fatal("Get succeeded with the server down")
	}

	l, err := net.Listen("tcp", ts.addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", ts.addr, err)
	}
	serveOn(t, l, &fakeHandler{}, ServerOptions{})
	c2, err := p.Get(ctx, ts.addr)
	if err != nil {
		t.Fatalf("Get after restart: %v", err)
	}
	if c2 == c1 {
		t.Fatal("Get returned the dead Conn")
	}
	deliverOK(t, c2, testDeliver("again"))
}

func TestPoolDrop(t *testing.T) {
	held := make(chan heldDelivery, 1)
	h := &fakeHandler{deliver: func(ctx context.Context, d Deliver, reply func(int, Result)) {
		if d.Msgs[0].ID == "hang" {
			held <- heldDelivery{ctx: ctx, d: d, reply: reply}
			return
		}
		reply(0, Result{Status: StatusDelivered, Detail: d.Msgs[0].ID})
	}}
	ts := startServer(t, h, ServerOptions{})
	p := newPoolT(t, DialOptions{})
	ctx := testCtx(t)
	c1, err := p.Get(ctx, ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := newCollector(t, 1)
	c1.Deliver(testDeliver("hang"), cl.done)
	recvN(t, held, 1)
	p.Drop(ts.addr)
	if o := cl.wait()[0]; !errors.Is(o.err, ErrConnLost) {
		t.Fatalf("message pending on a dropped Conn: %v, want ErrConnLost", o.err)
	}
	p.Drop(ts.addr)       // nothing left to drop
	p.Drop("127.0.0.1:1") // never known
	c2, err := p.Get(ctx, ts.addr)
	if err != nil || c2 == c1 {
		t.Fatalf("Get after Drop = %p, %v (dropped %p)", c2, err, c1)
	}
	deliverOK(t, c2, testDeliver("ok"))
}

func TestPoolClose(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{})
	p := NewPool(DialOptions{Logger: testLogger(t)})
	ctx := testCtx(t)
	c, err := p.Get(ctx, ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	if _, err := p.Get(ctx, ts.addr); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close returned %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestPoolGetGivesUpWithCtx(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := newPoolT(t, DialOptions{})
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() {
		_, err := p.Get(ctx, l.Addr().String())
		errc <- err
	}()
	nc, err := l.Accept() // the dial connects; the hello is never answered
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cancel()
	if err := recvN(t, errc, 1)[0]; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get returned %v, want context.Canceled", err)
	}
	// Pool.Close (cleanup) abandons the dial still waiting for its hello.
}

func TestPoolDropDuringDial(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	p := newPoolT(t, DialOptions{})
	errc := make(chan error, 1)
	go func() {
		_, err := p.Get(testCtx(t), addr)
		errc <- err
	}()
	nc, err := l.Accept() // the hello is never answered
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p.Drop(addr)
	if err := recvN(t, errc, 1)[0]; !errors.Is(err, ErrConnLost) || errors.Is(err, context.Canceled) {
		t.Fatalf("Get waiting on a dropped dial returned %v, want ErrConnLost", err)
	}
}
