package wire

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is the client end of a wire connection. Its methods are safe for concurrent use and
// requests are pipelined: each gets fresh Seqs, any number may be in flight, and each is
// answered when its own results arrive, in whatever order.
//
// Deliver never blocks: it queues the request and reports each message's outcome through
// a callback. Kick, Drain and Ping block until their answer, the end of ctx, or the end of
// the Conn. Nothing bounds the requests in flight on a Conn: callers bound their own (the
// server pushes back through TCP, and the queue of unsent requests grows meanwhile).
//
// The Conn pings the server every PingInterval and declares the connection lost when
// nothing arrived for IdleTimeout, so a server that stopped or a link that went silent
// fails pending calls with ErrConnLost within IdleTimeout.
type Conn struct {
	addr         string
	nc           net.Conn
	log          *slog.Logger
	maxFrame     int
	pingInterval time.Duration

	seq     atomic.Uint64
	wake    chan struct{} // capacity 1: the queue has frames
	closing chan struct{} // closed when shutdown starts
	done    chan struct{} // closed when the reader and writer have exited
	bufs    sync.Pool     // *[]byte, for encoding a request
	calls   sync.Pool     // *call

	qmu   sync.Mutex
	queue []byte // encoded frames for the writer

	mu      sync.Mutex
	pending map[uint64]waiter // by Seq; nil once shut down
	err     error             // why the Conn finished; nil while live
}

// waiter is who waits for one Seq's answer: a message of a Deliver (done and i), or a
// blocking call.
type waiter struct {
	done func(i int, r Result, err error)
	i    int
	call *call
	ping bool // the answer must be a pong; any other waiter's, a result
}

// call is one pending blocking call; done receives exactly one reply.
type call struct {
	done chan reply
}

type reply struct {
	r   Result
	err error
}

func (w waiter) answer(r Result, err error) {
	if w.call != nil {
		w.call.done <- reply{r: r, err: err}
		return
	}
	w.done(w.i, r, err)
}

// errClosedConn is what calls see after Close: closed by its owner, and for a pending call
// the outcome is unknown.
var errClosedConn = fmt.Errorf("conn %w; %w", ErrClosed, ErrConnLost)

// Deliver asks the node to deliver d's messages, in order, to a session of a client. It
// sets d.Seq (the first of len(d.Msgs) consecutive numbers), queues the request and
// returns at once.
//
// done is called exactly once for every message of d, with its index and its Result, or
// with an error and no Result: one wrapping ErrConnLost when the connection broke first
// (the outcome is unknown), ErrClosed (with ErrConnLost) when the Conn was closed,
// ErrFrameTooLarge when the request exceeds MaxFrame, ErrInvalid when d is invalid (no
// session, for instance). A d without messages is invalid and done is never called for
// it. There is no deadline per call: a caller that stops waiting ignores later results.
//
// done is called from the Conn's reader goroutine, from the caller's when the request
// fails at once, or from the goroutine that closes the Conn: calls for different messages
// of one Deliver may come from different goroutines, and may overlap when the Conn shuts
// down while results arrive. done must not block, nor call Close (which waits for the
// reader): it holds up every result of the Conn. A nil done discards the outcomes.
func (c *Conn) Deliver(d Deliver, done func(i int, r Result, err error)) {
	if done == nil {
		done = func(int, Result, error) {}
	}
	n := len(d.Msgs)
	if err := d.validate(); err != nil {
		if n == 0 {
			c.log.Warn("wire deliver without messages ignored", "client", d.Client)
		}
		failAll(done, n, fmt.Errorf("deliver: %w: %w", ErrInvalid, err))
		return
	}
	d.Seq = c.seq.Add(uint64(n)) - uint64(n) + 1
	p := c.bufs.Get().(*[]byte)
	defer c.putBuf(p)
	buf, start := beginFrame((*p)[:0], typeDeliver)
	*p = endFrame(d.appendBody(buf), start)
	c.sendMany("deliver", *p, d.Seq, n, done)
}

// sendMany queues an encoded request owed n results from seq on (a Deliver's or a
// Forward's), each answered through done.
func (c *Conn) sendMany(what string, frame []byte, seq uint64, n int, done func(int, Result, error)) {
	if err := c.checkSize(frame); err != nil {
		failAll(done, n, fmt.Errorf("%s: %w", what, err))
		return
	}
	c.mu.Lock()
	if c.pending == nil {
		err := c.err
		c.mu.Unlock()
		failAll(done, n, err)
		return
	}
	for i := range n {
		c.pending[seq+uint64(i)] = waiter{done: done, i: i}
	}
	c.mu.Unlock()
	c.push(frame)
}

func failAll(done func(int, Result, error), n int, err error) {
	for i := range n {
		done(i, Result{}, err)
	}
}

// Kick asks the node to disconnect a session; k.Seq is overwritten.
func (c *Conn) Kick(ctx context.Context, k Kick) (Result, error) {
	if err := k.validate(); err != nil {
		return Result{}, fmt.Errorf("kick: %w: %w", ErrInvalid, err)
	}
	k.Seq = c.seq.Add(1)
	return c.roundTrip(ctx, waiter{}, k.Seq, typeKick, k.appendBody)
}

// Drain tells the node that the mailboxes of some clients hold messages; d.Seq is
// overwritten.
func (c *Conn) Drain(ctx context.Context, d Drain) (Result, error) {
	if err := d.validate(); err != nil {
		return Result{}, fmt.Errorf("drain: %w: %w", ErrInvalid, err)
	}
	d.Seq = c.seq.Add(1)
	return c.roundTrip(ctx, waiter{}, d.Seq, typeDrain, d.appendBody)
}

// Ping waits for the server to answer a ping.
func (c *Conn) Ping(ctx context.Context) error {
	p := Ping{Seq: c.seq.Add(1)}
	_, err := c.roundTrip(ctx, waiter{ping: true}, p.Seq, typePing, p.appendBody)
	return err
}

// roundTrip sends one request for seq and waits for its answer.
func (c *Conn) roundTrip(ctx context.Context, w waiter, seq uint64, typ byte, appendBody func([]byte) []byte) (Result, error) {
	p := c.bufs.Get().(*[]byte)
	defer c.putBuf(p)
	buf, start := beginFrame((*p)[:0], typ)
	*p = endFrame(appendBody(buf), start)
	if err := c.checkSize(*p); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	w.call = c.calls.Get().(*call)
	c.mu.Lock()
	if c.pending == nil {
		err := c.err
		c.mu.Unlock()
		c.calls.Put(w.call)
		return Result{}, err
	}
	c.pending[seq] = w
	c.mu.Unlock()
	c.push(*p)

	select {
	case rep := <-w.call.done:
		c.calls.Put(w.call)
		return rep.r, rep.err
	case <-ctx.Done():
		if c.forget(seq) {
			c.calls.Put(w.call) // nobody will answer it now
		}
		return Result{}, ctx.Err()
	}
}

func (c *Conn) checkSize(frame []byte) error {
	if n := len(frame) - 4; n > c.maxFrame {
		return fmt.Errorf("%w: request of %d bytes, limit %d", ErrFrameTooLarge, n, c.maxFrame)
	}
	return nil
}

func (c *Conn) putBuf(p *[]byte) {
	if cap(*p) > keepBuf {
		*p = nil
	}
	*p = (*p)[:0]
	c.bufs.Put(p)
}

// push queues an encoded frame for the writer; it never blocks.
func (c *Conn) push(frame []byte) {
	c.qmu.Lock()
	wake := len(c.queue) == 0 // otherwise the writer has been woken already
	c.queue = append(c.queue, frame...)
	c.qmu.Unlock()
	if wake {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// complete hands seq's answer to its waiter; an answer nobody waits for any more (or a
// heartbeat's pong) is dropped. An answer of the wrong kind is a protocol error.
func (c *Conn) complete(seq uint64, pong bool, r Result) error {
	c.mu.Lock()
	w, ok := c.pending[seq]
	if ok && w.ping != pong {
		c.mu.Unlock()
		if pong {
			return fmt.Errorf("pong for seq %d, which awaits a result", seq)
		}
		return fmt.Errorf("result for seq %d, which awaits a pong", seq)
	}
	delete(c.pending, seq)
	c.mu.Unlock()
	if ok {
		w.answer(r, nil)
	}
	return nil
}

// forget stops waiting for seq; it reports whether seq was still pending.
func (c *Conn) forget(seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[seq]
	delete(c.pending, seq)
	return ok
}

// shutdown finishes the Conn with err, failing every pending call with it, in Seq order.
// Only the first call has an effect; it reports whether it was the first.
func (c *Conn) shutdown(err error) bool {
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return false
	}
	pending := c.pending
	c.pending = nil
	c.err = err
	close(c.closing)
	c.mu.Unlock()
	_ = c.nc.Close()
	for _, seq := range slices.Sorted(maps.Keys(pending)) {
		pending[seq].answer(Result{}, err)
	}
	return true
}

// Close closes the connection and waits for its goroutines. Pending calls fail with an
// error matching ErrClosed and ErrConnLost. Close is idempotent; it must not be called from
// a Deliver's done callback.
func (c *Conn) Close() error {
	c.closeWith(errClosedConn)
	return nil
}

func (c *Conn) closeWith(err error) {
	c.shutdown(err)
	<-c.done
}

// Done returns a channel closed when the connection is finished: closed, or broken.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection finished (wrapping ErrConnLost or ErrClosed), or nil
// while it is live.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Addr returns the address the Conn was dialed to.
func (c *Conn) Addr() string { return c.addr }
