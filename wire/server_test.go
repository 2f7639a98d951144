package wire

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestHelloRefused(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{Token: "secret"})
	opts := DialOptions{Token: "secret", Logger: testLogger(t)}
	goodHello := AppendFrame(nil, Hello{Version: ProtocolVersion, Token: "secret"})
	badMagic := append([]byte(nil), goodHello...)
	copy(badMagic[5:], "XXXX")

	for _, c := range []struct {
		name  string
		hello []byte
		want  string
	}{
		{"bad token", AppendFrame(nil, Hello{Version: ProtocolVersion, Token: "wrong"}), "bad token"},
		{"no token", AppendFrame(nil, Hello{Version: ProtocolVersion}), "bad token"},
		{"bad magic", badMagic, `bad magic "XXXX"`},
		{"bad version", AppendFrame(nil, Hello{Version: 2, Token: "secret"}), "unsupported protocol version 2"},
		{"not a hello", AppendFrame(nil, Ping{Seq: 1}), "expected hello, got ping"},
		{"oversized hello", binary.BigEndian.AppendUint32(nil, 1<<20), "frame too large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := dial(testCtx(t), ts.addr, opts.withDefaults(), c.hello)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("dial error %v, want ErrRefused mentioning %q", err, c.want)
			}
		})
	}

	_, err := Dial(testCtx(t), ts.addr, DialOptions{Token: "guess"})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "bad token") {
		t.Fatalf("Dial with a bad token: %v", err)
	}
	t.Log(err)
	dialT(t, ts.addr, opts) // the server is unaffected
}

func TestRawHTTPRequestGetsReject(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{})
	rc := dialRaw(t, ts.addr, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f := rc.recv(t)
	if r, ok := f.(Reject); !ok || !strings.Contains(r.Reason, "frame too large") {
		t.Fatalf("answer %#v, want a reject", f)
	}
	rc.waitClosed(t)
}

func TestDialNotAWireServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		buf := make([]byte, 64)
		n, _ := nc.Read(buf)
		_, _ = nc.Write(buf[:n]) // an echo server answers our own hello
	}()
	_, err = Dial(testCtx(t), l.Addr().String(), DialOptions{})
	if err == nil || !strings.Contains(err.Error(), "expected hello-ok, got hello") {
		t.Fatalf("Dial to an echo server: %v", err)
	}
	<-accepted
}

func TestDialTimesOutOnSilentServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, l.Addr().String(), DialOptions{DialTimeout: time.Minute})
		errc <- err
	}()
	nc, err := l.Accept() // accepted, never answered
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cancel()
	if err := recvN(t, errc, 1)[0]; !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial after cancel: %v", err)
	}
}

func TestServerCloseFailsPendingCalls(t *testing.T) {
	entered := make(chan struct{}, 10)
	h := &fakeHandler{deliver: func(ctx context.Context, d Deliver) Result {
		entered <- struct{}{}
		<-ctx.Done()
		return Result{Status: StatusFailed}
	}}
	ts := startServer(t, h, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{})
	errc := make(chan error, 5)
	for range 5 {
		go func() {
			_, err := c.Deliver(testCtx(t), Deliver{Client: "c", Topic: "t"})
			errc <- err
		}()
	}
	recvN(t, entered, 5)
	start := time.Now()
	ts.stop(t)
	for _, err := range recvN(t, errc, 5) {
		if !errors.Is(err, ErrConnLost) {
			t.Errorf("pending call returned %v, want ErrConnLost", err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("pending calls took %v to fail", d)
	}
	<-c.Done()
	if !errors.Is(c.Err(), ErrConnLost) {
		t.Errorf("Err() = %v", c.Err())
	}
	if _, err := c.Kick(testCtx(t), Kick{Client: "c"}); !errors.Is(err, ErrConnLost) {
		t.Errorf("call on a lost Conn returned %v", err)
	}
	if _, err := Dial(testCtx(t), ts.addr, DialOptions{}); err == nil {
		t.Error("Dial succeeded after server Close")
	}
}

func TestServeAfterClose(t *testing.T) {
	s := NewServer(&fakeHandler{}, ServerOptions{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); err != nil {
		t.Fatalf("Serve after Close = %v, want nil", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("listener still open: %v", err)
	}
}

func TestServeReturnsWhenListenerCloses(t *testing.T) {
	s := NewServer(&fakeHandler{}, ServerOptions{})
	defer s.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(l) }()
	l.Close()
	if err := recvN(t, errc, 1)[0]; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve = %v, want net.ErrClosed", err)
	}
}

func TestOversizedFrameClosesOnlyThatConn(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{MaxFrame: 1 << 10})
	good := dialT(t, ts.addr, DialOptions{})
	rc := helloRaw(t, ts.addr, "")

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rc.send(t, binary.BigEndian.AppendUint32(nil, 1<<30)) // declares 1 GiB, sends nothing
	rc.waitClosed(t)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
		t.Errorf("%d bytes allocated while refusing the frame", n)
	}

	if r, err := good.Deliver(testCtx(t), Deliver{Client: "c", Topic: "t", ID: "still"}); err != nil || r.Detail != "still" {
		t.Fatalf("other connection: %+v, %v", r, err)
	}
}

func TestMalformedRequests(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{})
	good := dialT(t, ts.addr, DialOptions{})

	// A readable Seq gets a bad-request answer and the connection stays up.
	rc := helloRaw(t, ts.addr, "")
	rc.send(t, rawFrame(typeDeliver, 42, 0xff))
	f := rc.recv(t)
	if r, ok := f.(Result); !ok || r.Seq != 42 || r.Status != StatusBadRequest || !strings.Contains(r.Detail, "malformed") {
		t.Fatalf("answer %#v, want bad-request for seq 42", f)
	}
	rc.send(t, AppendFrame(nil, Kick{Seq: 43, Client: "c", Session: "s"}))
	if f := rc.recv(t); f != (Result{Seq: 43, Status: StatusDelivered, Detail: "s"}) {
		t.Fatalf("answer after a bad request: %#v", f)
	}
	rc.send(t, AppendFrame(nil, Ping{Seq: 44}))
	if f := rc.recv(t); f != (Pong{Seq: 44}) {
		t.Fatalf("ping answered with %#v", f)
	}

	// No readable Seq, or a frame a client must not send: the connection is closed.
	for name, frame := range map[string][]byte{
		"unknown type":   rawFrame(0xee, 1),
		"seq unreadable": rawFrame(typeDrain, 0x80),
		"bad ping":       rawFrame(typePing),
		"result":         AppendFrame(nil, Result{Seq: 1, Status: StatusDelivered}),
		"second hello":   AppendFrame(nil, Hello{Version: ProtocolVersion}),
		"empty body":     {0, 0, 0, 0},
	} {
		rc := helloRaw(t, ts.addr, "")
		rc.send(t, frame)
		rc.waitClosed(t)
		if r, err := good.Drain(testCtx(t), Drain{Client: name}); err != nil || r.Detail != name {
			t.Fatalf("after %s: other connection: %+v, %v", name, r, err)
		}
	}
}

func TestHandlerPanic(t *testing.T) {
	h := &fakeHandler{deliver: func(_ context.Context, d Deliver) Result {
		if d.ID == "boom" {
			panic("kaboom")
		}
		return Result{Status: StatusDelivered, Detail: d.ID}
	}, drain: func(context.Context, Drain) Result {
		return Result{} // no status: a handler bug
	}}
	ts := startServer(t, h, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{})
	ctx := testCtx(t)
	r, err := c.Deliver(ctx, Deliver{Client: "c", Topic: "t", ID: "boom"})
	if err != nil || r.Status != StatusFailed || !strings.Contains(r.Detail, "kaboom") {
		t.Fatalf("panicking Deliver = %+v, %v", r, err)
	}
	r, err = c.Drain(ctx, Drain{Client: "c"})
	if err != nil || r.Status != StatusFailed || r.Seq == 0 {
		t.Fatalf("zero-status Drain = %+v, %v", r, err)
	}
	r, err = c.Deliver(ctx, Deliver{Client: "c", Topic: "t", ID: "fine"})
	if err != nil || r.Detail != "fine" {
		t.Fatalf("Deliver after a panic = %+v, %v", r, err)
	}
}

func TestLongDetailTruncated(t *testing.T) {
	h := &fakeHandler{deliver: func(context.Context, Deliver) Result {
		return Result{Status: StatusFailed, Detail: strings.Repeat("é", maxDetail)}
	}}
	ts := startServer(t, h, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{})
	r, err := c.Deliver(testCtx(t), Deliver{Client: "c", Topic: "t"})
	if err != nil || len(r.Detail) > maxDetail || len(r.Detail) < maxDetail-2 || !strings.HasPrefix(r.Detail, "éé") {
		t.Fatalf("Detail of %d bytes, %v", len(r.Detail), err)
	}
}

func TestMaxInflightBackpressure(t *testing.T) {
	entered := make(chan string, 10)
	release := make(chan struct{})
	h := &fakeHandler{deliver: func(ctx context.Context, d Deliver) Result {
		entered <- d.ID
		select {
		case <-release:
		case <-ctx.Done():
		}
		return Result{Status: StatusDelivered, Detail: d.ID}
	}}
	ts := startServer(t, h, ServerOptions{MaxInflight: 2})
	c := dialT(t, ts.addr, DialOptions{})
	ctx := testCtx(t)
	results := make(chan Result, 3)
	for _, id := range []string{"a", "b", "c"} {
		go func() {
			r, err := c.Deliver(ctx, Deliver{Client: "c", Topic: "t", ID: id})
			if err != nil {
				t.Errorf("Deliver %s: %v", id, err)
			}
			results <- r
		}()
	}
	recvN(t, entered, 2)
	// Proving a third call is held back needs a bounded wait for something not to happen.
	select {
	case id := <-entered:
		t.Fatalf("handler call %s started beyond MaxInflight", id)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	recvN(t, entered, 1)
	recvN(t, results, 3)
}

func TestHandlerContextEndsWithConnection(t *testing.T) {
	entered := make(chan struct{})
	ended := make(chan error, 1)
	h := &fakeHandler{kick: func(ctx context.Context, k Kick) Result {
		close(entered)
		<-ctx.Done()
		ended <- ctx.Err()
		return Result{Status: StatusFailed}
	}}
	ts := startServer(t, h, ServerOptions{})
	rc := helloRaw(t, ts.addr, "")
	rc.send(t, AppendFrame(nil, Kick{Seq: 1, Client: "c", Session: "s"}))
	<-entered
	rc.Close()
	if err := recvN(t, ended, 1)[0]; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler ctx ended with %v", err)
	}
}

func TestHelloTimeout(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{HelloTimeout: 50 * time.Millisecond})
	rc := dialRaw(t, ts.addr, nil) // says nothing
	rc.waitClosed(t)
}
