package wire

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHandler answers at once by default: every message Delivered with its id in Detail
// (Deliver), Delivered with the session (Kick) or the clients joined by commas (Drain) in
// Detail. A non-nil func field replaces that answer.
type fakeHandler struct {
	deliver func(ctx context.Context, d Deliver, reply func(int, Result))
	kick    func(ctx context.Context, k Kick) Result
	drain   func(ctx context.Context, d Drain) Result
}

var _ Handler = (*fakeHandler)(nil)

func (h *fakeHandler) Deliver(ctx context.Context, d Deliver, reply func(int, Result)) {
	if h.deliver != nil {
		h.deliver(ctx, d, reply)
		return
	}
	for i, m := range d.Msgs {
		reply(i, Result{Status: StatusDelivered, Detail: m.ID})
	}
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
	return Result{Status: StatusDelivered, Detail: strings.Join(d.Clients, ",")}
}

// heldDelivery is a Deliver a test handler kept to answer later.
type heldDelivery struct {
	ctx   context.Context
	d     Deliver
	reply func(int, Result)
}

// holdingHandler hands every Deliver to the test through held instead of answering it.
func holdingHandler(held chan<- heldDelivery) *fakeHandler {
	return &fakeHandler{deliver: func(ctx context.Context, d Deliver, reply func(int, Result)) {
		held <- heldDelivery{ctx: ctx, d: d, reply: reply}
	}}
}

// answerAll answers every message of hd Delivered with its id.
func (hd heldDelivery) answerAll() {
	for i, m := range hd.d.Msgs {
		hd.reply(i, Result{Status: StatusDelivered, Detail: m.ID})
	}
}

// msgs returns a QoS 1 message per id, on topic "t".
func msgs(ids ...string) []Msg {
	out := make([]Msg, len(ids))
	for i, id := range ids {
		out[i] = Msg{ID: id, Topic: "t", Payload: []byte("p-" + id), QoS: 1, TTL: 60_000}
	}
	return out
}

// testDeliver is a valid Deliver of a message per id.
func testDeliver(ids ...string) Deliver {
	return Deliver{Epoch: 1, Client: "c", Session: "s", Msgs: msgs(ids...)}
}

// outcome is what a Deliver's done callback got for one message.
type outcome struct {
	r   Result
	err error
}

// collector gathers a Deliver's outcomes and checks that done is called exactly once per
// message.
type collector struct {
	t    testing.TB
	mu   sync.Mutex
	got  []outcome
	seen []int
	left int
	all  chan struct{} // closed when every message has its outcome
}

func newCollector(t testing.TB, n int) *collector {
	cl := &collector{t: t, got: make([]outcome, n), seen: make([]int, n), left: n, all: make(chan struct{})}
	if n == 0 {
		close(cl.all)
	}
	return cl
}

func (cl *collector) done(i int, r Result, err error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if i < 0 || i >= len(cl.got) {
		cl.t.Errorf("done called for message %d of %d", i, len(cl.got))
		return
	}
	cl.seen[i]++
	if cl.seen[i] > 1 {
		cl.t.Errorf("done called %d times for message %d", cl.seen[i], i)
		return
	}
	cl.got[i] = outcome{r: r, err: err}
	if cl.left--; cl.left == 0 {
		close(cl.all)
	}
}

// wait returns the outcomes once every message has one, or fails the test after a while.
func (cl *collector) wait() []outcome {
	cl.t.Helper()
	select {
	case <-cl.all:
	case <-time.After(20 * time.Second):
		cl.mu.Lock()
		defer cl.mu.Unlock()
		cl.t.Fatalf("%d of %d messages still without an outcome", cl.left, len(cl.got))
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return append([]outcome(nil), cl.got...)
}

// deliverT delivers d on c and waits for every message's outcome.
func deliverT(t testing.TB, c *Conn, d Deliver) []outcome {
	t.Helper()
	cl := newCollector(t, len(d.Msgs))
	c.Deliver(d, cl.done)
	return cl.wait()
}

// deliverOK delivers d on c and checks that every message was Delivered with its id.
func deliverOK(t testing.TB, c *Conn, d Deliver) {
	t.Helper()
	for i, o := range deliverT(t, c, d) {
		if o.err != nil || o.r.Status != StatusDelivered || o.r.Detail != d.Msgs[i].ID {
			t.Fatalf("message %d (%s): %+v, %v", i, d.Msgs[i].ID, o.r, o.err)
		}
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// logRecorder is a slog.Handler keeping the messages of error records.
type logRecorder struct {
	mu     sync.Mutex
	errors []string
}

func (l *logRecorder) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelError
}

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errors = append(l.errors, r.Message)
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count returns how many error records contain substr.
func (l *logRecorder) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.errors {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
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

// checkFor polls f every step until it returns nil, failing the test with its last error
// after total.
func checkFor(t testing.TB, total, step time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", total, err)
		}
		time.Sleep(step)
	}
}

// stallProxy forwards TCP connections on 127.0.0.1 to a target, and can stall: stop
// forwarding in both directions, closes included, without closing anything, which is what
// a stopped peer or a cut cable looks like from either end.
type stallProxy struct {
	addr   string
	target string
	l      net.Listener
	closed chan struct{} // closed when the test ends

	mu    sync.Mutex
	open  chan struct{} // closed while forwarding
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t testing.TB, target string) *stallProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := make(chan struct{})
	close(open)
	p := &stallProxy{addr: l.Addr().String(), target: target, l: l, closed: make(chan struct{}), open: open, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		close(p.closed)
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// stall stops forwarding; bytes already in flight stay where they are.
func (p *stallProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default:
	}
}

// resume forwards again, starting with what was held.
func (p *stallProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

// pass waits until forwarding is allowed; false means the test is over.
func (p *stallProxy) pass() bool {
	p.mu.Lock()
	open := p.open
	p.mu.Unlock()
	select {
	case <-open:
		return true
	case <-p.closed:
		return false
	}
}

func (p *stallProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// pipe copies src to dst through the gate; an end of src is forwarded, through the gate
// too, by closing both.
func (p *stallProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer func() {
		dst.Close()
		src.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if !p.pass() {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
