package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// newConn starts the reader and writer of a connection whose hello is done; ir is the
// reader under br, which gets the idle timeout now.
func newConn(nc net.Conn, ir *idleReader, br *bufio.Reader, addr string, o DialOptions) *Conn {
	c := &Conn{
		addr:         addr,
		nc:           nc,
		log:          o.Logger.With("addr", addr),
		maxFrame:     o.MaxFrame,
		pingInterval: o.PingInterval,
		wake:         make(chan struct{}, 1),
		closing:      make(chan struct{}),
		done:         make(chan struct{}),
		pending:      make(map[uint64]waiter),
	}
	c.bufs.New = func() any { return new([]byte) }
	c.calls.New = func() any { return &call{done: make(chan reply, 1)} }
	ir.timeout = o.IdleTimeout
	writerDone := make(chan struct{})
	go c.writeLoop(writerDone)
	go c.readLoop(br, writerDone)
	return c
}

// readLoop matches answers to pending calls until the connection ends; it owns the writer's
// end and closes done last.
func (c *Conn) readLoop(br *bufio.Reader, writerDone <-chan struct{}) {
	defer func() {
		<-writerDone
		close(c.done)
	}()
	fr := frameReader{br: br, max: c.maxFrame}
	for {
		body, err := fr.next()
		if err != nil {
			c.lost("read", err)
			return
		}
		if err := c.dispatch(body); err != nil {
			c.lost("read", err)
			return
		}
	}
}

// dispatch decodes results and pongs without boxing them in a Frame.
func (c *Conn) dispatch(body []byte) error {
	switch body[0] {
	case typeResult:
		r, err := decodeResult(body[1:])
		if err != nil {
			return err
		}
		return c.complete(r.Seq, false, r)
	case typePong:
		p, err := decodePong(body[1:])
		if err != nil {
			return err
		}
		return c.complete(p.Seq, true, Result{})
	}
	f, err := DecodeFrame(body)
	if err != nil {
		return err
	}
	if r, ok := f.(Reject); ok {
		return fmt.Errorf("server rejected the connection: %s", r.Reason)
	}
	return fmt.Errorf("unexpected %s frame", typeName(body[0]))
}

// lost finishes the Conn after an I/O or protocol failure.
func (c *Conn) lost(op string, err error) {
	if c.shutdown(fmt.Errorf("%w: %s: %w", ErrConnLost, op, err)) {
		if err == io.EOF {
			c.log.Info("wire connection closed by server")
		} else {
			c.log.Warn("wire connection lost", "err", err)
		}
	}
}

// keepQueueBytes is the largest request queue capacity the writer keeps once it is written:
// enough for a burst of large Delivers from many callers without reallocating, and there is
// one Conn per node.
const keepQueueBytes = 1 << 20

// writeLoop writes queued requests, all that are queued in one write, and a heartbeat ping
// every pingInterval. The heartbeat has Seq 0, which no call uses, so its pong is dropped:
// what matters is that the server hears from us and we from it.
func (c *Conn) writeLoop(done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(c.pingInterval)
	defer tick.Stop()
	heartbeat := AppendFrame(nil, Ping{})
	var buf []byte
	for {
		select {
		case <-c.wake:
		case <-tick.C:
			c.qmu.Lock()
			c.queue = append(c.queue, heartbeat...)
			c.qmu.Unlock()
		case <-c.closing:
			return
		}
		for {
			c.qmu.Lock()
			buf, c.queue = c.queue, buf[:0]
			c.qmu.Unlock()
			if len(buf) == 0 {
				break
			}
			if _, err := c.nc.Write(buf); err != nil {
				if !errors.Is(err, net.ErrClosed) {
					c.lost("write", err)
				}
				return
			}
			if cap(buf) > keepQueueBytes {
				buf = nil
			}
		}
	}
}
