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
	"strings"
	"sync"
)

// maxDetail bounds a Result's Detail on the wire (a panic message can be long).
const maxDetail = 4 << 10

// serverConn is one accepted connection after its hello: the reader runs on the
// connection's goroutine, plus one writer goroutine and one goroutine per handler call.
type serverConn struct {
	h        Handler
	nc       net.Conn
	log      *slog.Logger
	maxFrame int
	out      chan outFrame // answers for the writer
	sem      chan struct{} // one slot per running handler call
	handlers sync.WaitGroup
}

// outFrame is a Result, or a Pong for r.Seq; a struct rather than a Frame so that queueing
// it does not allocate.
type outFrame struct {
	pong bool
	r    Result
}

// serveConn serves nc until it breaks or ctx ends; it returns once every goroutine it
// started has finished. The caller closes nc.
func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	log := s.opts.Logger.With("remote", nc.RemoteAddr().String())
	br := bufio.NewReaderSize(nc, 32<<10)
	if err := s.acceptHello(nc, br); err != nil {
		level := slog.LevelWarn
		if errors.Is(err, io.EOF) {
			level = slog.LevelDebug // a port probe or health check
		}
		log.Log(ctx, level, "wire hello failed", "err", err)
		return
	}
	log.Debug("wire connection open")

	ctx, cancel := context.WithCancel(ctx)
	sc := &serverConn{
		h:        s.h,
		nc:       nc,
		log:      log,
		maxFrame: s.opts.MaxFrame,
		out:      make(chan outFrame, 256),
		sem:      make(chan struct{}, s.opts.MaxInflight),
	}
	writerDone := make(chan struct{})
	go sc.writeLoop(ctx, writerDone)
	err := sc.readLoop(ctx, br)
	cancel()
	_ = nc.Close()
	sc.handlers.Wait()
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
		body, err := fr.next()
		if err != nil {
			return err
		}
		if err := sc.dispatch(ctx, body); err != nil {
			return err
		}
	}
}

// request is one decoded request: kind says which field is set. Passing it by value to the
// handler goroutine costs one allocation per request.
type request struct {
	kind    byte
	deliver Deliver
	kick    Kick
	drain   Drain
}

func (r *request) seq() uint64 {
	switch r.kind {
	case typeDeliver:
		return r.deliver.Seq
	case typeKick:
		return r.kick.Seq
	}
	return r.drain.Seq
}

// dispatch starts the handler call for one request. An error closes the connection.
func (sc *serverConn) dispatch(ctx context.Context, body []byte) error {
	req := request{kind: body[0]}
	var err error
	switch req.kind {
	case typeDeliver:
		if req.deliver, err = decodeDeliver(body[1:]); err == nil {
			err = req.deliver.validate()
		}
	case typeKick:
		if req.kick, err = decodeKick(body[1:]); err == nil {
			err = req.kick.validate()
		}
	case typeDrain:
		if req.drain, err = decodeDrain(body[1:]); err == nil {
			err = req.drain.validate()
		}
	case typePing:
		p, err := decodePing(body[1:])
		if err != nil {
			return err
		}
		sc.send(ctx, outFrame{pong: true, r: Result{Seq: p.Seq}})
		return nil
	default:
		if _, err := DecodeFrame(body); err != nil {
			return err
		}
		return fmt.Errorf("unexpected %s frame", typeName(body[0]))
	}
	if err != nil {
		return sc.badRequest(ctx, body, err)
	}
	return sc.spawn(ctx, req)
}

// badRequest answers a request that failed to decode or validate, if its Seq can be read;
// otherwise the connection cannot be trusted and is closed.
func (sc *serverConn) badRequest(ctx context.Context, body []byte, err error) error {
	seq, ok := requestSeq(body)
	if !ok {
		return err
	}
	sc.log.Warn("wire bad request", "request", typeName(body[0]), "seq", seq, "err", err)
	sc.send(ctx, outFrame{r: Result{Seq: seq, Status: StatusBadRequest, Detail: err.Error()}})
	return nil
}

// spawn runs the handler call in its own goroutine once a MaxInflight slot is free; while
// none is, the reader waits here and the client feels it through TCP.
func (sc *serverConn) spawn(ctx context.Context, req request) error {
	select {
	case sc.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	sc.handlers.Add(1)
	go sc.run(ctx, req)
	return nil
}

// run is a handler call's goroutine; it holds its MaxInflight slot until the answer is
// queued, so goroutines waiting on the writer stay bounded too.
func (sc *serverConn) run(ctx context.Context, req request) {
	defer sc.handlers.Done()
	defer func() { <-sc.sem }()
	sc.send(ctx, outFrame{r: sc.call(ctx, &req)})
}

// call runs one handler call, turning a panic or an invalid status into StatusFailed.
func (sc *serverConn) call(ctx context.Context, req *request) (r Result) {
	defer func() {
		if p := recover(); p != nil {
			sc.log.Error("wire handler panicked", "request", typeName(req.kind), "seq", req.seq(), "panic", p, "stack", string(debug.Stack()))
			r = Result{Status: StatusFailed, Detail: fmt.Sprintf("handler panic: %v", p)}
		}
		if !r.Status.valid() {
			sc.log.Error("wire handler returned an invalid status", "request", typeName(req.kind), "seq", req.seq(), "status", r.Status)
			r = Result{Status: StatusFailed, Detail: "handler returned " + r.Status.String()}
		}
		r.Seq = req.seq()
	}()
	switch req.kind {
	case typeDeliver:
		return sc.h.Deliver(ctx, req.deliver)
	case typeKick:
		return sc.h.Kick(ctx, req.kick)
	}
	return sc.h.Drain(ctx, req.drain)
}

// send queues an answer for the writer; it is dropped when the connection is ending.
func (sc *serverConn) send(ctx context.Context, o outFrame) {
	select {
	case sc.out <- o:
	case <-ctx.Done():
	}
}

// writeLoop writes answers, flushing only when none is queued, so answers that complete
// together share a syscall. A write error closes the connection, which stops the reader.
func (sc *serverConn) writeLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	bw := bufio.NewWriterSize(sc.nc, 32<<10)
	for {
		select {
		case o := <-sc.out:
			writeOut(bw, o)
		case <-ctx.Done():
			return
		}
		for more := true; more; {
			select {
			case o := <-sc.out:
				writeOut(bw, o)
			default:
				more = false
			}
		}
		if err := bw.Flush(); err != nil {
			sc.log.Debug("wire write failed", "err", err)
			_ = sc.nc.Close()
			return
		}
	}
}

// writeOut encodes straight into the writer's buffer; an error sticks in bw and is
// returned by the next Flush.
func writeOut(bw *bufio.Writer, o outFrame) {
	var buf []byte
	if o.pong {
		b, start := beginFrame(bw.AvailableBuffer(), typePong)
		buf = endFrame(Pong{Seq: o.r.Seq}.appendBody(b), start)
	} else {
		r := o.r
		if len(r.Detail) > maxDetail {
			r.Detail = strings.ToValidUTF8(r.Detail[:maxDetail], "")
		}
		b, start := beginFrame(bw.AvailableBuffer(), typeResult)
		buf = endFrame(r.appendBody(b), start)
	}
	_, _ = bw.Write(buf)
}
