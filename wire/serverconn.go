package wire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
)

// serverConn is one accepted connection after its hello. Two goroutines serve it: the
// reader, which is the connection's goroutine and calls the Handler, and the writer.
// Answers reach the writer through an unbounded queue, so that a reply never blocks; the
// queue is bounded in effect by MaxPending, which stops the reader.
type serverConn struct {
	h          Handler
	nc         net.Conn
	log        *slog.Logger
	maxFrame   int
	maxPending int
	onFull     func() // test hook, may be nil

	wake chan struct{} // capacity 1: the queue has answers
	room chan struct{} // capacity 1: load fell under maxPending while the reader waited

	mu      sync.Mutex
	queue   []outFrame // answers for the writer
	load    int        // messages awaiting their reply, plus answers queued and not yet written
	waiting bool       // the reader waits on room
	ended   bool       // the connection is over: answers are dropped
}

// outFrame is a Result, or a Pong for r.Seq; a struct rather than a Frame so that queueing
// it does not allocate.
type outFrame struct {
	pong bool
	r    Result
}

// serveConn serves nc until it breaks or ctx ends; it returns once both goroutines of the
// connection have finished. The caller closes nc.
func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	log := s.opts.Logger.With("remote", nc.RemoteAddr().String())
	ir := &idleReader{nc: nc} // no idle deadline until the hello is done
	br := bufio.NewReaderSize(ir, 32<<10)
	if err := s.acceptHello(nc, br); err != nil {
		level := slog.LevelWarn
		if errors.Is(err, io.EOF) {
			level = slog.LevelDebug // a port probe or health check
		}
		log.Log(ctx, level, "wire hello failed", "err", err)
		return
	}
	log.Debug("wire connection open")
	ir.timeout = s.opts.IdleTimeout

	ctx, cancel := context.WithCancel(ctx)
	sc := &serverConn{
		h:          s.h,
		nc:         nc,
		log:        log,
		maxFrame:   s.opts.MaxFrame,
		maxPending: s.opts.MaxPending,
		onFull:     s.opts.onBackPressure,
		wake:       make(chan struct{}, 1),
		room:       make(chan struct{}, 1),
	}
	writerDone := make(chan struct{})
	go sc.writeLoop(ctx, s.opts.WriteTimeout, writerDone)
	err := sc.readLoop(ctx, br)
	sc.end()
	cancel()
	_ = nc.Close()
	<-writerDone

	if err == io.EOF || errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) {
		log.Debug("wire connection closed")
	} else {
		log.Warn("wire connection failed", "err", err)
	}
}

func (sc *serverConn) readLoop(ctx context.Context, br *bufio.Reader) error {
	fr := frameReader{br: br, max: sc.maxFrame}
	for {
		if err := sc.waitRoom(ctx); err != nil {
			return err
		}
		body, err := fr.next()
		if err != nil {
			return err
		}
		if err := sc.dispatch(ctx, body); err != nil {
			return err
		}
	}
}

// waitRoom holds the reader while load is at MaxPending; the client feels it through TCP.
func (sc *serverConn) waitRoom(ctx context.Context) error {
	for {
		sc.mu.Lock()
		if sc.load < sc.maxPending {
			sc.mu.Unlock()
			return nil
		}
		sc.waiting = true
		sc.mu.Unlock()
		if sc.onFull != nil {
			sc.onFull()
		}
		select {
		case <-sc.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// dispatch decodes one request and calls the handler for it. An error closes the
// connection.
func (sc *serverConn) dispatch(ctx context.Context, body []byte) error {
	switch body[0] {
	case typeDeliver:
		d, err := decodeDeliver(body[1:])
		if err != nil {
			return sc.undecodable(body, err)
		}
		if err := d.validate(); err != nil {
			sc.badRequest(typeDeliver, d.Seq, max(len(d.Msgs), 1), err)
			return nil
		}
		sc.deliver(ctx, d)
	case typeKick:
		k, err := decodeKick(body[1:])
		if err != nil {
			return sc.undecodable(body, err)
		}
		if err := k.validate(); err != nil {
			sc.badRequest(typeKick, k.Seq, 1, err)
			return nil
		}
		sc.answer(sc.call(ctx, typeKick, k.Seq, func() Result { return sc.h.Kick(ctx, k) }))
	case typeDrain:
		d, err := decodeDrain(body[1:])
		if err != nil {
			return sc.undecodable(body, err)
		}
		if err := d.validate(); err != nil {
			sc.badRequest(typeDrain, d.Seq, 1, err)
			return nil
		}
		sc.answer(sc.call(ctx, typeDrain, d.Seq, func() Result { return sc.h.Drain(ctx, d) }))
	case typeForward:
		f, err := decodeForward(body[1:])
		if err != nil {
			return sc.undecodable(body, err)
		}
		fh, ok := sc.h.(ForwardHandler)
		switch {
		case !ok:
			sc.badRequest(typeForward, f.Seq, len(f.Items), errors.New("this server takes no forwards"))
			return nil
		case f.validate() != nil:
			sc.badRequest(typeForward, f.Seq, max(len(f.Items), 1), f.validate())
			return nil
		}
		sc.forward(ctx, fh, f)
	case typePing:
		p, err := decodePing(body[1:])
		if err != nil {
			return err
		}
		sc.enqueue(outFrame{pong: true, r: Result{Seq: p.Seq}}, true)
	default:
		if _, err := DecodeFrame(body); err != nil {
			return err
		}
		return fmt.Errorf("unexpected %s frame", typeName(body[0]))
	}
	return nil
}

// undecodable answers a request that failed to decode with StatusBadRequest, one Result per
// answer it is owed, when those can be read; otherwise the connection cannot be trusted and
// is closed.
func (sc *serverConn) undecodable(body []byte, err error) error {
	seq, n, ok := requestAnswers(body)
	if !ok {
		return err
	}
	sc.badRequest(body[0], seq, n, err)
	return nil
}

// badRequest answers n Seqs from seq with StatusBadRequest; the handler is not called.
func (sc *serverConn) badRequest(typ byte, seq uint64, n int, err error) {
	sc.log.Warn("wire bad request", "request", typeName(typ), "seq", seq, "err", err)
	for i := range n {
		sc.enqueue(outFrame{r: Result{Seq: seq + uint64(i), Status: StatusBadRequest, Detail: err.Error()}}, true)
	}
}

// deliver calls the handler for d. Its messages count towards MaxPending from now until
// their answers are written.
func (sc *serverConn) deliver(ctx context.Context, d Deliver) {
	dl := newDelivery(sc, d.Seq, len(d.Msgs))
	sc.mu.Lock()
	sc.load += len(d.Msgs)
	sc.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			sc.log.Error("wire handler panicked", "request", "deliver", "seq", d.Seq, "msgs", len(d.Msgs), "panic", p, "stack", string(debug.Stack()))
			dl.failUnanswered(fmt.Sprintf("handler panic: %v", p))
		}
	}()
	sc.h.Deliver(ctx, d, dl.reply)
}

// forward calls the handler for f; its items count towards MaxPending as a Deliver's
// messages do.
func (sc *serverConn) forward(ctx context.Context, fh ForwardHandler, f Forward) {
	dl := newDelivery(sc, f.Seq, len(f.Items))
	sc.mu.Lock()
	sc.load += len(f.Items)
	sc.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			sc.log.Error("wire handler panicked", "request", "forward", "seq", f.Seq, "items", len(f.Items), "panic", p, "stack", string(debug.Stack()))
			dl.failUnanswered(fmt.Sprintf("handler panic: %v", p))
		}
	}()
	fh.Forward(ctx, f, dl.reply)
}

// call runs a Kick or Drain handler, turning a panic or an invalid status into
// StatusFailed, and stamps the request's Seq.
func (sc *serverConn) call(ctx context.Context, typ byte, seq uint64, f func() Result) (r Result) {
	defer func() {
		if p := recover(); p != nil {
			sc.log.Error("wire handler panicked", "request", typeName(typ), "seq", seq, "panic", p, "stack", string(debug.Stack()))
			r = Result{Status: StatusFailed, Detail: fmt.Sprintf("handler panic: %v", p)}
		}
		r = sc.checkStatus(typ, seq, r)
		r.Seq = seq
	}()
	return f()
}

// checkStatus turns a Result with a status this version does not know (a handler bug) into
// StatusFailed.
func (sc *serverConn) checkStatus(typ byte, seq uint64, r Result) Result {
	if r.Status.valid() {
		return r
	}
	sc.log.Error("wire handler answered with an invalid status", "request", typeName(typ), "seq", seq, "status", r.Status)
	return Result{Status: StatusFailed, Detail: "handler answered " + r.Status.String()}
}

// answer queues the Result of a Kick or Drain.
func (sc *serverConn) answer(r Result) { sc.enqueue(outFrame{r: r}, true) }
