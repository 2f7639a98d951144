package wire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
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
		{"version 1", AppendFrame(nil, Hello{Version: 1, Token: "secret"}), "unsupported protocol version 1: this server speaks version 2 only"},
		{"version 3", AppendFrame(nil, Hello{Version: 3, Token: "secret"}), "unsupported protocol version 3: this server speaks version 2 only"},
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

// A version-1 client reads the reject (its frame types are unchanged) and closes.
func TestVersion1HelloGetsReject(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{})
	rc := dialRaw(t, ts.addr, AppendFrame(nil, Hello{Version: 1}))
	f := rc.recv(t)
	if r, ok := f.(Reject); !ok || !strings.Contains(r.Reason, "version 1") || !strings.Contains(r.Reason, "version 2") {
		t.Fatalf("answer %#v, want a reject naming versions 1 and 2", f)
	}
	rc.waitClosed(t)
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
	held := make(chan heldDelivery, 10)
	ts := startServer(t, holdingHandler(held), ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{})
	var cls []*collector
	for i := range 5 {
		cl := newCollector(t, 2)
		cls = append(cls, cl)
		c.Deliver(testDeliver(fmt.Sprint(i, "a"), fmt.Sprint(i, "b")), cl.done)
	}
	hds := recvN(t, held, 5)
	start := time.Now()
	ts.stop(t)
	for _, cl := range cls {
		for i, o := range cl.wait() {
			if !errors.Is(o.err, ErrConnLost) {
				t.Errorf("pending message %d: %+v, %v; want ErrConnLost", i, o.r, o.err)
			}
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("pending calls took %v to fail", d)
	}
	for _, hd := range hds {
		if hd.ctx.Err() == nil {
			t.Error("handler context still live after Server.Close")
		}
		hd.answerAll() // discarded, and harmless
	}
	<-c.Done()
	if !errors.Is(c.Err(), ErrConnLost) {
		t.Errorf("Err() = %v", c.Err())
	}
	if _, err := c.Kick(testCtx(t), Kick{Client: "c", Session: "s"}); !errors.Is(err, ErrConnLost) {
		t.Errorf("Kick on a lost Conn returned %v", err)
	}
	if o := deliverT(t, c, testDeliver("late")); !errors.Is(o[0].err, ErrConnLost) {
		t.Errorf("Deliver on a lost Conn: %+v", o[0])
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
	deliverOK(t, good, testDeliver("still"))
}

func TestMalformedRequests(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{})
	good := dialT(t, ts.addr, DialOptions{})

	// A readable Seq (for a Deliver, and message count) gets a bad-request answer for
	// every result owed, and the connection stays up.
	rc := helloRaw(t, ts.addr, "")
	cut := AppendFrame(nil, Deliver{Seq: 42, Client: "c", Session: "s", Msgs: msgs("a", "b")})
	cut = endFrame(cut[:len(cut)-1], 0) // the last message's TTL is missing
	rc.send(t, cut)
	for _, seq := range []uint64{42, 43} {
		f := rc.recv(t)
		if r, ok := f.(Result); !ok || r.Seq != seq || r.Status != StatusBadRequest || !strings.Contains(r.Detail, "malformed") {
			t.Fatalf("answer %#v, want bad-request for seq %d", f, seq)
		}
	}
	rc.send(t, rawFrame(typeKick, 44, 0xff))
	if f := rc.recv(t); f.(Result).Seq != 44 || f.(Result).Status != StatusBadRequest {
		t.Fatalf("answer %#v, want bad-request for seq 44", f)
	}
	rc.send(t, AppendFrame(nil, Kick{Seq: 45, Client: "c", Session: "s"}))
	if f := rc.recv(t); f != (Result{Seq: 45, Status: StatusDelivered, Detail: "s"}) {
		t.Fatalf("answer after a bad request: %#v", f)
	}
	rc.send(t, AppendFrame(nil, Ping{Seq: 46}))
	if f := rc.recv(t); f != (Pong{Seq: 46}) {
		t.Fatalf("ping answered with %#v", f)
	}

	// No readable Seq or message count, or a frame a client must not send: the
	// connection is closed.
	for name, frame := range map[string][]byte{
		"unknown type":          rawFrame(0xee, 1),
		"seq unreadable":        rawFrame(typeDrain, 0x80),
		"deliver count missing": rawFrame(typeDeliver, 42, 0xff),
		"deliver over MaxMsgs":  rawFrame(typeDeliver, 42, 0, 1, 'c', 1, 's', 0, 0x91, 0x4e),
		"bad ping":              rawFrame(typePing),
		"result":                AppendFrame(nil, Result{Seq: 1, Status: StatusDelivered}),
		"second hello":          AppendFrame(nil, Hello{Version: ProtocolVersion}),
		"empty body":            {0, 0, 0, 0},
	} {
		rc := helloRaw(t, ts.addr, "")
		rc.send(t, frame)
		rc.waitClosed(t)
		if r, err := good.Drain(testCtx(t), Drain{Clients: []string{name}}); err != nil || r.Detail != name {
			t.Fatalf("after %s: other connection: %+v, %v", name, r, err)
		}
	}
}

func TestInvalidRequestsAreBadRequests(t *testing.T) {
	called := make(chan string, 10)
	h := &fakeHandler{
		deliver: func(context.Context, Deliver, func(int, Result)) { called <- "deliver" },
		kick:    func(context.Context, Kick) Result { called <- "kick"; return Result{Status: StatusDelivered} },
		drain:   func(context.Context, Drain) Result { called <- "drain"; return Result{Status: StatusDelivered} },
	}
	ts := startServer(t, h, ServerOptions{})
	rc := helloRaw(t, ts.addr, "")
	for _, c := range []struct {
		name  string
		frame Frame
		seqs  []uint64
		want  string
	}{
		{"deliver without session", Deliver{Seq: 10, Client: "c", Msgs: msgs("a", "b")}, []uint64{10, 11}, "empty session"},
		{"deliver without client", Deliver{Seq: 20, Session: "s", Msgs: msgs("a")}, []uint64{20}, "empty client id"},
		{"deliver without messages", Deliver{Seq: 30, Client: "c", Session: "s"}, []uint64{30}, "no messages"},
		{"deliver with qos 2", Deliver{Seq: 40, Client: "c", Session: "s", Msgs: []Msg{{ID: "i", Topic: "t", QoS: 2}}}, []uint64{40}, "qos 2"},
		{"deliver with qos 2 and a receipt", Deliver{Seq: 45, Client: "c", Session: "s", Msgs: []Msg{{ID: "i", Topic: "t", QoS: 2, Receipt: true}}}, []uint64{45}, "qos 2"},
		{"kick without session", Kick{Seq: 50, Client: "c"}, []uint64{50}, "empty session"},
		{"drain without clients", Drain{Seq: 60}, []uint64{60}, "no clients"},
		{"drain with an empty client", Drain{Seq: 70, Clients: []string{"a", ""}}, []uint64{70}, "empty client id"},
	} {
		rc.send(t, AppendFrame(nil, c.frame))
		for _, seq := range c.seqs {
			f := rc.recv(t)
			if r, ok := f.(Result); !ok || r.Seq != seq || r.Status != StatusBadRequest || !strings.Contains(r.Detail, c.want) {
				t.Errorf("%s: answer %#v, want bad-request for seq %d mentioning %q", c.name, f, seq, c.want)
			}
		}
	}
	rc.send(t, AppendFrame(nil, Ping{Seq: 99}))
	if f := rc.recv(t); f != (Pong{Seq: 99}) {
		t.Fatalf("ping answered with %#v", f)
	}
	if len(called) > 0 {
		t.Errorf("handler called for an invalid request: %s", <-called)
	}
}

func TestHandlerPanic(t *testing.T) {
	late := make(chan struct{})
	lateDone := make(chan struct{})
	h := &fakeHandler{
		deliver: func(_ context.Context, d Deliver, reply func(int, Result)) {
			if d.Msgs[0].ID != "boom" {
				for i, m := range d.Msgs {
					reply(i, Result{Status: StatusDelivered, Detail: m.ID})
				}
				return
			}
			reply(0, Result{Status: StatusDelivered, Detail: "before the panic"})
			go func() {
				defer close(lateDone)
				<-late
				reply(2, Result{Status: StatusDelivered, Detail: "too late"})
			}()
			panic("kaboom")
		},
		kick: func(context.Context, Kick) Result { panic("kick kaboom") },
		drain: func(context.Context, Drain) Result {
			return Result{} // no status: a handler bug
		},
	}
	logs := &logRecorder{}
	ts := startServer(t, h, ServerOptions{Logger: slog.New(logs)})
	c := dialT(t, ts.addr, DialOptions{})
	ctx := testCtx(t)

	out := deliverT(t, c, testDeliver("boom", "b", "c"))
	if o := out[0]; o.err != nil || o.r.Status != StatusDelivered || o.r.Detail != "before the panic" {
		t.Errorf("message answered before the panic: %+v, %v", o.r, o.err)
	}
	for i, o := range out[1:] {
		if o.err != nil || o.r.Status != StatusFailed || !strings.Contains(o.r.Detail, "kaboom") {
			t.Errorf("message %d left unanswered by the panic: %+v, %v", i+1, o.r, o.err)
		}
	}
	close(late)
	<-lateDone // its reply is dropped: message 2 has its answer

	r, err := c.Kick(ctx, Kick{Client: "c", Session: "s"})
	if err != nil || r.Status != StatusFailed || !strings.Contains(r.Detail, "kick kaboom") || r.Seq == 0 {
		t.Fatalf("panicking Kick = %+v, %v", r, err)
	}
	r, err = c.Drain(ctx, Drain{Clients: []string{"c"}})
	if err != nil || r.Status != StatusFailed || r.Seq == 0 {
		t.Fatalf("zero-status Drain = %+v, %v", r, err)
	}
	deliverOK(t, c, testDeliver("fine", "also fine"))
	if n := logs.count("panicked"); n != 2 {
		t.Errorf("%d panics logged, want 2", n)
	}
	if n := logs.count("replied"); n != 0 {
		t.Errorf("the late reply after a panic was logged as a handler bug")
	}
}

func TestDuplicateReplyIgnored(t *testing.T) {
	h := &fakeHandler{deliver: func(_ context.Context, d Deliver, reply func(int, Result)) {
		reply(0, Result{Status: StatusDelivered, Detail: "first"})
		reply(0, Result{Status: StatusFailed, Detail: "second"})
		reply(len(d.Msgs), Result{Status: StatusDelivered, Detail: "out of range"})
		reply(-1, Result{Status: StatusDelivered, Detail: "negative"})
		reply(1, Result{Status: StatusDelivered, Detail: "b"})
		reply(1, Result{Status: StatusDelivered, Detail: "b again"})
	}}
	logs := &logRecorder{}
	ts := startServer(t, h, ServerOptions{Logger: slog.New(logs)})
	rc := helloRaw(t, ts.addr, "")
	rc.send(t, AppendFrame(nil, Deliver{Seq: 10, Client: "c", Session: "s", Msgs: msgs("a", "b")}))
	rc.send(t, AppendFrame(nil, Deliver{Seq: 12, Client: "c", Session: "s", Msgs: msgs("x", "y")}))
	rc.send(t, AppendFrame(nil, Ping{Seq: 14}))
	// Answers are written in the order they were given; the pong shows nothing else was.
	for _, want := range []Frame{
		Result{Seq: 10, Status: StatusDelivered, Detail: "first"},
		Result{Seq: 11, Status: StatusDelivered, Detail: "b"},
		Result{Seq: 12, Status: StatusDelivered, Detail: "first"},
		Result{Seq: 13, Status: StatusDelivered, Detail: "b"},
		Pong{Seq: 14},
	} {
		if f := rc.recv(t); f != want {
			t.Fatalf("got %#v, want %#v", f, want)
		}
	}
	if n := logs.count("wire handler replied"); n != 2 {
		t.Errorf("bad replies logged %d times, want once per Deliver (2)", n)
	}
}

func TestReplyAfterConnEndsIsDropped(t *testing.T) {
	held := make(chan heldDelivery, 2)
	ts := startServer(t, holdingHandler(held), ServerOptions{})
	c, err := Dial(testCtx(t), ts.addr, DialOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	cl := newCollector(t, 1)
	c.Deliver(testDeliver("a"), cl.done)
	hd := recvN(t, held, 1)[0]
	c.Close()
	if o := cl.wait()[0]; !errors.Is(o.err, ErrClosed) {
		t.Fatalf("pending message after Close: %+v, %v", o.r, o.err)
	}
	select {
	case <-hd.ctx.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("handler context still live after the client closed")
	}
	hd.reply(0, Result{Status: StatusDelivered}) // dropped
	hd.reply(0, Result{Status: StatusDelivered}) // a duplicate too

	// The server is unaffected, and a reply after it closed is dropped as well.
	c2 := dialT(t, ts.addr, DialOptions{})
	cl2 := newCollector(t, 1)
	c2.Deliver(testDeliver("b"), cl2.done)
	hd2 := recvN(t, held, 1)[0]
	ts.stop(t)
	hd2.reply(0, Result{Status: StatusDelivered})
	if o := cl2.wait()[0]; !errors.Is(o.err, ErrConnLost) {
		t.Fatalf("pending message after server Close: %+v, %v", o.r, o.err)
	}
}

func TestLongDetailTruncated(t *testing.T) {
	h := &fakeHandler{deliver: func(_ context.Context, _ Deliver, reply func(int, Result)) {
		reply(0, Result{Status: StatusFailed, Detail: strings.Repeat("é", maxDetail)})
	}}
	ts := startServer(t, h, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{})
	o := deliverT(t, c, testDeliver("a"))[0]
	if o.err != nil || len(o.r.Detail) > maxDetail || len(o.r.Detail) < maxDetail-2 || !strings.HasPrefix(o.r.Detail, "éé") {
		t.Fatalf("Detail of %d bytes, %v", len(o.r.Detail), o.err)
	}
}

func TestMaxPendingBackpressure(t *testing.T) {
	held := make(chan heldDelivery, 10)
	full := make(chan struct{}, 10)
	ts := startServer(t, holdingHandler(held), ServerOptions{MaxPending: 2, onBackPressure: func() { full <- struct{}{} }})
	// No heartbeat: its pong would count towards MaxPending too.
	c := dialT(t, ts.addr, DialOptions{PingInterval: time.Hour, IdleTimeout: 2 * time.Hour})

	first, second, third := newCollector(t, 2), newCollector(t, 1), newCollector(t, 1)
	c.Deliver(testDeliver("a0", "a1"), first.done)
	c.Deliver(testDeliver("b"), second.done)
	c.Deliver(testDeliver("c"), third.done)

	a := recvN(t, held, 1)[0]
	recvN(t, full, 1) // the reader stopped: two messages await their reply
	select {
	case hd := <-held:
		t.Fatalf("Deliver %s read past MaxPending", hd.d.Msgs[0].ID)
	default:
	}

	a.reply(0, Result{Status: StatusDelivered, Detail: "a0"}) // one pending now: the reader resumes
	b := recvN(t, held, 1)[0]
	recvN(t, full, 1) // and stops again at two
	select {
	case hd := <-held:
		t.Fatalf("Deliver %s read past MaxPending", hd.d.Msgs[0].ID)
	default:
	}

	a.reply(1, Result{Status: StatusDelivered, Detail: "a1"})
	b.answerAll()
	recvN(t, held, 1)[0].answerAll()
	for _, cl := range []*collector{first, second, third} {
		for i, o := range cl.wait() {
			if o.err != nil || o.r.Status != StatusDelivered {
				t.Errorf("message %d: %+v, %v", i, o.r, o.err)
			}
		}
	}
}

func TestHandlerContextEndsWithConnection(t *testing.T) {
	held := make(chan heldDelivery, 1)
	ts := startServer(t, holdingHandler(held), ServerOptions{})
	rc := helloRaw(t, ts.addr, "")
	rc.send(t, AppendFrame(nil, Deliver{Seq: 1, Client: "c", Session: "s", Msgs: msgs("a")}))
	hd := recvN(t, held, 1)[0]
	rc.Close()
	select {
	case <-hd.ctx.Done():
		if !errors.Is(hd.ctx.Err(), context.Canceled) {
			t.Fatalf("handler ctx ended with %v", hd.ctx.Err())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("handler ctx did not end with the connection")
	}
}

func TestHelloTimeout(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{HelloTimeout: 50 * time.Millisecond})
	rc := dialRaw(t, ts.addr, nil) // says nothing
	rc.waitClosed(t)
}

func TestServerClosesIdleConn(t *testing.T) {
	const idle = 200 * time.Millisecond
	ts := startServer(t, &fakeHandler{}, ServerOptions{IdleTimeout: idle})
	rc := helloRaw(t, ts.addr, "") // then says nothing, not even pings
	start := time.Now()
	rc.waitClosed(t)
	if d := time.Since(start); d < idle/2 {
		t.Fatalf("closed after %v, before the idle timeout %v", d, idle)
	}
}

func TestWriteTimeoutClosesStuckClient(t *testing.T) {
	started := make(chan context.Context, 1)
	big := strings.Repeat("x", maxDetail)
	h := &fakeHandler{deliver: func(ctx context.Context, d Deliver, reply func(int, Result)) {
		select {
		case started <- ctx:
		default:
		}
		for i := range d.Msgs {
			reply(i, Result{Status: StatusDelivered, Detail: big})
		}
	}}
	ts := startServer(t, h, ServerOptions{WriteTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute})
	rc := helloRaw(t, ts.addr, "") // sends, never reads

	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	var frames []byte
	for i := range 20 { // 80 MB of answers, far more than socket buffers hold
		frames = AppendFrame(frames, Deliver{Seq: uint64(1 + i*len(ids)), Client: "c", Session: "s", Msgs: msgs(ids...)})
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, _ = rc.Write(frames) // fails once the server gives up
	}()
	ctx := recvN(t, started, 1)[0]
	select {
	case <-ctx.Done(): // the server closed the connection
	case <-time.After(20 * time.Second):
		t.Fatal("the writer is still stuck on a client that does not read")
	}
	rc.Close()
	<-written
	if o := deliverT(t, dialT(t, ts.addr, DialOptions{}), testDeliver("a"))[0]; o.err != nil || o.r.Status != StatusDelivered {
		t.Fatalf("another connection: %+v, %v", o.r, o.err)
	}
}

func TestServerOptionsValidate(t *testing.T) {
	if err := DefaultServerOptions().Validate(); err != nil {
		t.Errorf("server defaults invalid: %v", err)
	}
	for _, c := range []struct {
		o    ServerOptions
		want string
	}{
		{ServerOptions{MaxPending: -1}, "max pending -1"},
		{ServerOptions{MaxFrame: -1}, "max frame -1"},
		{ServerOptions{HelloTimeout: -1}, "hello timeout"},
		{ServerOptions{IdleTimeout: -1}, "idle timeout"},
		{ServerOptions{WriteTimeout: -1}, "write timeout"},
	} {
		if err := c.o.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error mentioning %q", c.o, err, c.want)
		}
	}
	d := (ServerOptions{}).withDefaults()
	if d.MaxPending != 100_000 || d.IdleTimeout != 10*time.Second || d.WriteTimeout != 10*time.Second {
		t.Errorf("defaults %+v", d)
	}
}
