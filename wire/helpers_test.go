package wire

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"
)

// fakeHandler answers at once by default: Delivered, with the request's message id (Deliver),
// session (Kick) or client (Drain) in Detail. A non-nil func field replaces that answer.
type fakeHandler struct {
	deliver func(ctx context.Context, d Deliver) Result
	kick    func(ctx context.Context, k Kick) Result
	drain   func(ctx context.Context, d Drain) Result
}

var _ Handler = (*fakeHandler)(nil)

func (h *fakeHandler) Deliver(ctx context.Context, d Deliver) Result {
	if h.deliver != nil {
		return h.deliver(ctx, d)
	}
	return Result{Status: StatusDelivered, Detail: d.ID}
}

func (h *fakeHandler) Kick(ctx context.Context, k Kick) Result {
	if h.kick != nil {
		return h.kick(ctx, k)
	}
	return Result{Status: StatusDelivered, Detail: k.Session}
}

func (h *fakeHandler) Drain(ctx context.Context, d Drain) Result {
	if h.drain != nil {
		return h.drain(ctx, d)
	}
	return Result{Status: StatusDelivered, Detail: d.Client}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// testServer is a Server serving on a loopback listener.
type testServer struct {
	*Server
	addr   string
	served chan error // Serve's return value
}

// startServer serves h on 127.0.0.1:0 until the test ends.
func startServer(t testing.TB, h Handler, opts ServerOptions) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, l, h, opts)
}

func serveOn(t testing.TB, l net.Listener, h Handler, opts ServerOptions) *testServer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	ts := &testServer{Server: NewServer(h, opts), addr: l.Addr().String(), served: make(chan error, 1)}
	go func() { ts.served <- ts.Serve(l) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop closes the server and checks that Serve returned nil; it may be called twice.
func (ts *testServer) stop(t testing.TB) {
	t.Helper()
	if err := ts.Close(); err != nil {
		t.Errorf("server Close: %v", err)
	}
	select {
	case err, ok := <-ts.served:
		if ok && err != nil {
			t.Errorf("Serve returned %v after Close, want nil", err)
		}
		if ok {
			close(ts.served)
		}
	case <-time.After(10 * time.Second):
		t.Error("Serve did not return after Close")
	}
}

// dialT dials addr and closes the Conn when the test ends.
func dialT(t testing.TB, addr string, opts DialOptions) *Conn {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	c, err := Dial(testCtx(t), addr, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testCtx bounds a test's calls so a bug fails the test rather than hanging it.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawConn is a hand-driven client for sending what Conn never would.
type rawConn struct {
	net.Conn
	fr frameReader
}

// dialRaw connects and, when hello is non-nil, sends it.
func dialRaw(t testing.TB, addr string, hello []byte) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if err := nc.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	rc := &rawConn{Conn: nc, fr: frameReader{br: bufio.NewReader(nc), max: DefaultMaxFrame}}
	if hello != nil {
		rc.send(t, hello)
	}
	return rc
}

// helloRaw connects and completes a hello with token.
func helloRaw(t testing.TB, addr, token string) *rawConn {
	t.Helper()
	rc := dialRaw(t, addr, AppendFrame(nil, Hello{Version: ProtocolVersion, Token: token}))
	if f := rc.recv(t); f != (HelloOK{Version: ProtocolVersion}) {
		t.Fatalf("hello answered with %#v", f)
	}
	return rc
}

func (rc *rawConn) send(t testing.TB, b []byte) {
	t.Helper()
	if _, err := rc.Write(b); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

func (rc *rawConn) recv(t testing.TB) Frame {
	t.Helper()
	body, err := rc.fr.next()
	if err != nil {
		t.Fatalf("raw read: %v", err)
	}
	f, err := DecodeFrame(body)
	if err != nil {
		t.Fatalf("raw decode: %v", err)
	}
	return f
}

// waitClosed waits for the server to close the connection.
func (rc *rawConn) waitClosed(t testing.TB) {
	t.Helper()
	for {
		_, err := rc.fr.next()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open: %v", err)
		}
		return
	}
}

// rawFrame builds a frame from a type byte and raw body bytes.
func rawFrame(typ byte, fields ...byte) []byte {
	b, start := beginFrame(nil, typ)
	return endFrame(append(b, fields...), start)
}

// recvN receives n values or fails the test after a while.
func recvN[T any](t testing.TB, ch <-chan T, n int) []T {
	t.Helper()
	out := make([]T, 0, n)
	timeout := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case v := <-ch:
			out = append(out, v)
		case <-timeout:
			t.Fatalf("got %d of %d values", len(out), n)
		}
	}
	return out
}
