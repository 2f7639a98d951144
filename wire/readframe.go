package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// keepBuf is the largest read buffer a frameReader keeps between frames; a rare large frame
// does not pin its memory for the connection's lifetime.
const keepBuf = 64 << 10

// frameReader reads frame bodies from a connection into a reused buffer.
type frameReader struct {
	br  *bufio.Reader
	max int
	buf []byte
}

// next returns the next body, valid until the following call. A declared length over the
// maximum is refused before anything is allocated for it.
func (r *frameReader) next() ([]byte, error) {
	if cap(r.buf) > keepBuf {
		r.buf = nil
	}
	h, err := r.br.Peek(4)
	if err != nil {
		if err == io.EOF && len(h) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(h)
	_, _ = r.br.Discard(4) // cannot fail: the bytes are buffered
	switch {
	case n == 0:
		return nil, fmt.Errorf("%w: empty body", ErrMalformed)
	case uint64(n) > uint64(r.max):
		return nil, fmt.Errorf("%w: declared %d bytes, limit %d", ErrFrameTooLarge, n, r.max)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, max(int(n), 512))
	}
	body := r.buf[:n]
	if _, err := io.ReadFull(r.br, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}

// idleReader sets a read deadline of now+timeout before every read of the connection, so a
// read fails once nothing has arrived for timeout: a stopped peer or a link cut without a
// reset is noticed. A zero timeout (during the hello, which has its own deadline) sets none.
// Only the connection's reader uses it.
type idleReader struct {
	nc      net.Conn
	timeout time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	if r.timeout > 0 {
		if err := r.nc.SetReadDeadline(time.Now().Add(r.timeout)); err != nil {
			return 0, err
		}
	}
	n, err := r.nc.Read(p)
	if err != nil && r.timeout > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("nothing received for %v: %w", r.timeout, err)
	}
	return n, err
}
