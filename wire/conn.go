package wire

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
)

// Conn is the client end of a wire connection. Calls are safe for concurrent use and are
// pipelined: each gets a fresh Seq, many may be in flight, and each returns when its own
// result arrives, whatever the order.
//
// A call returns a Result, or an error: ctx.Err() when ctx ended first (a late result is
// discarded), an error wrapping ErrConnLost when the connection broke (the outcome is
// unknown), ErrClosed (with ErrConnLost) when the Conn was closed, or ErrFrameTooLarge when
// the request was too large to send.
type Conn struct {
	addr     string
	nc       net.Conn
	log      *slog.Logger
	maxFrame int

	seq     atomic.Uint64
	writeq  chan *[]byte  // encoded frames for the writer
	closing chan struct{} // closed when shutdown starts
	done    chan struct{} // closed when the reader and writer have exited
	bufs    sync.Pool     // *[]byte
	calls   sync.Pool     // *call

	mu      sync.Mutex
	pending map[uint64]*call // nil once shut down
	err     error            // why the Conn finished; nil while live
}

// call is one pending request; done receives exactly one reply.
type call struct {
	done chan reply
}

type reply struct {
	r   Result
	err error
}

// errClosedConn is what calls see after Close: closed by its owner, and for a pending call
// the outcome is unknown.
var errClosedConn = fmt.Errorf("conn %w; %w", ErrClosed, ErrConnLost)

// Deliver asks the node to deliver d to its client; d.Seq is overwritten.
func (c *Conn) Deliver(ctx context.Context, d Deliver) (Result, error) {
	d.Seq = c.seq.Add(1)
	return c.roundTrip(ctx, d.Seq, c.encode(typeDeliver, d.appendBody))
}

// Kick asks the node to disconnect a session; k.Seq is overwritten.
func (c *Conn) Kick(ctx context.Context, k Kick) (Result, error) {
	k.Seq = c.seq.Add(1)
	return c.roundTrip(ctx, k.Seq, c.encode(typeKick, k.appendBody))
}

// Drain tells the node a client's mailbox has messages; d.Seq is overwritten.
func (c *Conn) Drain(ctx context.Context, d Drain) (Result, error) {
	d.Seq = c.seq.Add(1)
	return c.roundTrip(ctx, d.Seq, c.encode(typeDrain, d.appendBody))
}

// Ping waits for the server to answer a ping.
func (c *Conn) Ping(ctx context.Context) error {
	p := Ping{Seq: c.seq.Add(1)}
	_, err := c.roundTrip(ctx, p.Seq, c.encode(typePing, p.appendBody))
	return err
}

// encode encodes a frame into a pooled buffer, which the writer gives back with putBuf.
func (c *Conn) encode(typ byte, appendBody func([]byte) []byte) *[]byte {
	p := c.bufs.Get().(*[]byte)
	buf, start := beginFrame((*p)[:0], typ)
	*p = endFrame(appendBody(buf), start)
	return p
}

func (c *Conn) putBuf(p *[]byte) {
	if cap(*p) > keepBuf {
		*p = nil
	}
	*p = (*p)[:0]
	c.bufs.Put(p)
}

// roundTrip sends the encoded frame for request seq and waits for its answer.
func (c *Conn) roundTrip(ctx context.Context, seq uint64, frame *[]byte) (Result, error) {
	if n := len(*frame) - 4; n > c.maxFrame {
		c.putBuf(frame)
		return Result{}, fmt.Errorf("%w: request of %d bytes, limit %d", ErrFrameTooLarge, n, c.maxFrame)
	}
	if err := ctx.Err(); err != nil {
		c.putBuf(frame)
		return Result{}, err
	}
	cl := c.calls.Get().(*call)
	c.mu.Lock()
	if c.pending == nil {
		err := c.err
		c.mu.Unlock()
		c.putBuf(frame)
		c.calls.Put(cl)
		return Result{}, err
	}
	c.pending[seq] = cl
	c.mu.Unlock()

	select {
	case c.writeq <- frame:
	case <-c.closing:
		// shutdown has failed cl, which was pending; its reply is below.
		c.putBuf(frame)
	case <-ctx.Done():
		c.putBuf(frame)
		c.forget(seq)
		return Result{}, ctx.Err()
	}
	select {
	case rep := <-cl.done:
		c.calls.Put(cl)
		return rep.r, rep.err
	case <-ctx.Done():
		// cl is not reused: its reply may still arrive.
		c.forget(seq)
		return Result{}, ctx.Err()
	}
}

// complete hands seq's answer to its caller; an answer nobody waits for any more is dropped.
func (c *Conn) complete(seq uint64, rep reply) {
	c.mu.Lock()
	cl := c.pending[seq]
	delete(c.pending, seq)
	c.mu.Unlock()
	if cl != nil {
		cl.done <- rep
	}
}

func (c *Conn) forget(seq uint64) {
	c.mu.Lock()
	delete(c.pending, seq)
	c.mu.Unlock()
}

// shutdown finishes the Conn with err, failing every pending call with it. Only the first
// call has an effect; it reports whether it was the first.
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
	for _, cl := range pending {
		cl.done <- reply{err: err}
	}
	return true
}

// Close closes the connection and waits for its goroutines. Pending calls fail with an
// error matching ErrClosed and ErrConnLost. Close is idempotent.
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
