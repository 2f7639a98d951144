package wire

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"time"
)

// maxDetail bounds a Result's Detail on the wire (a panic message can be long).
const maxDetail = 4 << 10

// keepQueue is the largest answer queue capacity the writer keeps once it is drained.
const keepQueue = 4096

// enqueue adds an answer for the writer; count says it adds to the load (it is not the reply
// to a Deliver's message, counted when the Deliver arrived). It never blocks, and drops the
// answer once the connection has ended.
func (sc *serverConn) enqueue(o outFrame, count bool) {
	sc.mu.Lock()
	if sc.ended {
		sc.mu.Unlock()
		return
	}
	wake := len(sc.queue) == 0 // otherwise the writer has been woken already
	sc.queue = append(sc.queue, o)
	if count {
		sc.load++
	}
	sc.mu.Unlock()
	if wake {
		select {
		case sc.wake <- struct{}{}:
		default:
		}
	}
}

// take swaps the queue for spare and takes its answers out of the load.
func (sc *serverConn) take(spare []outFrame) []outFrame {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	batch := sc.queue
	sc.queue = spare[:0]
	sc.load -= len(batch)
	if sc.waiting && sc.load < sc.maxPending {
		sc.waiting = false
		select {
		case sc.room <- struct{}{}:
		default:
		}
	}
	return batch
}

// end drops the queued answers and makes later ones be dropped.
func (sc *serverConn) end() {
	sc.mu.Lock()
	sc.ended = true
	sc.queue = nil
	sc.mu.Unlock()
}

// writeLoop writes answers, flushing only when none is queued, so answers that complete
// together share a syscall. Each batch of writes has timeout to finish; a write error
// closes the connection, which stops the reader.
func (sc *serverConn) writeLoop(ctx context.Context, timeout time.Duration, done chan<- struct{}) {
	defer close(done)
	bw := bufio.NewWriterSize(sc.nc, 32<<10)
	var batch []outFrame
	for {
		select {
		case <-sc.wake:
		case <-ctx.Done():
			return
		}
		for {
			batch = sc.take(batch)
			if len(batch) == 0 {
				break
			}
			// The deadline covers the writes bufio makes when its buffer fills, too.
			if err := sc.nc.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
				sc.writeFailed(err)
				return
			}
			for i := range batch {
				writeOut(bw, &batch[i])
			}
			clear(batch) // drop the Details
			if cap(batch) > keepQueue {
				batch = nil
			}
		}
		if err := bw.Flush(); err != nil {
			sc.writeFailed(err)
			return
		}
	}
}

// writeFailed closes the connection, which stops the reader. A timeout means the client
// stopped reading.
func (sc *serverConn) writeFailed(err error) {
	if errors.Is(err, net.ErrClosed) {
		sc.log.Debug("wire write failed", "err", err)
	} else {
		sc.log.Warn("wire write failed; closing the connection", "err", err)
	}
	_ = sc.nc.Close()
}

// writeOut encodes straight into the writer's buffer; an error sticks in bw and is
// returned by the next Flush.
func writeOut(bw *bufio.Writer, o *outFrame) {
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
