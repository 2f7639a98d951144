package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
)

// newConn starts the reader and writer of a connection whose hello is done.
func newConn(nc net.Conn, br *bufio.Reader, addr string, o DialOptions) *Conn {
	c := &Conn{
		addr:     addr,
		nc:       nc,
		log:      o.Logger.With("addr", addr),
		maxFrame: o.MaxFrame,
		writeq:   make(chan *[]byte, 256),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
		pending:  make(map[uint64]*call),
	}
	c.bufs.New = func() any { return new([]byte) }
	c.calls.New = func() any { return &call{done: make(chan reply, 1)} }
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
		c.complete(r.Seq, reply{r: r})
		return nil
	case typePong:
		p, err := decodePong(body[1:])
		if err != nil {
			return err
		}
		c.complete(p.Seq, reply{})
		return nil
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

// writeLoop writes queued requests, flushing only when none is queued, so concurrent calls
// share syscalls.
func (c *Conn) writeLoop(done chan<- struct{}) {
	defer close(done)
	bw := bufio.NewWriterSize(c.nc, 32<<10)
	for {
		select {
		case p := <-c.writeq:
			c.write(bw, p)
		case <-c.closing:
			return
		}
		for more := true; more; {
			select {
			case p := <-c.writeq:
				c.write(bw, p)
			default:
				more = false
			}
		}
		if err := bw.Flush(); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				c.lost("write", err)
			}
			return
		}
	}
}

// write buffers one frame; an error sticks in bw and is returned by the next Flush.
func (c *Conn) write(bw *bufio.Writer, p *[]byte) {
	_, _ = bw.Write(*p)
	c.putBuf(p)
}
