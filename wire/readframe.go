package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
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
