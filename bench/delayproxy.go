package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// DelayProxyConfig configures a DelayProxy. DefaultDelayProxyConfig shows every default.
type DelayProxyConfig struct {
	// Listen is the address to listen on; it must be a loopback IP (127.0.0.0/8 or ::1).
	// Port 0 picks a free port (Addr tells which).
	Listen string
	// Target is where every accepted connection is forwarded; a loopback IP too, so the
	// proxy never reaches off the machine.
	Target string
	// Delay is added to each direction: bytes read at t are written on at t+Delay. A
	// round trip through the proxy takes twice Delay more. The stream keeps flowing
	// meanwhile: the delay is latency, not a pause.
	Delay time.Duration
	// Buffer bounds the bytes one direction of one connection holds while they wait out
	// the delay. When it is full the proxy stops reading that side until bytes leave, so
	// TCP flow control slows the sender down rather than the proxy growing.
	Buffer int
	// MaxConns bounds the connections forwarded at once; more are closed on accept.
	MaxConns int
}

// DefaultDelayProxyConfig returns the defaults: 50 ms each way (a 100 ms round trip).
func DefaultDelayProxyConfig() DelayProxyConfig {
	return DelayProxyConfig{
		Listen:   "127.0.0.1:0",
		Delay:    50 * time.Millisecond,
		Buffer:   1 << 20, // 1 MiB per direction and connection
		MaxConns: 64,
	}
}

// Validate checks the configuration; errors name the field.
func (c DelayProxyConfig) Validate() error {
	for _, a := range []struct{ field, addr string }{{"Listen", c.Listen}, {"Target", c.Target}} {
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil {
			return fmt.Errorf("%s %q: %w", a.field, a.addr, err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%s %q: want a loopback IP address (127.0.0.0/8 or ::1)", a.field, a.addr)
		}
	}
	switch {
	case c.Delay < 0 || c.Delay > 10*time.Second:
		return fmt.Errorf("bad Delay %v: want 0 to 10s", c.Delay)
	case c.Buffer < 64<<10 || c.Buffer > 64<<20:
		return fmt.Errorf("delay proxy buffer %d: want 64 KiB to 64 MiB", c.Buffer)
	case c.MaxConns < 1:
		return fmt.Errorf("delay proxy connections %d: want at least 1", c.MaxConns)
	}
	return nil
}

// DelayProxy is a TCP proxy that delays each direction of every connection by a fixed
// time, to put a client behind a slow link (a 100 ms round trip with the default delay)
// on a machine where everything else is on loopback. Each direction has a reader that
// stamps what it reads and a writer that writes it on when its time comes, so a
// connection streams at full speed, only later. A connection ends when both directions
// have seen end of stream (each passed on as a half close), or either fails.
type DelayProxy struct {
	cfg DelayProxyConfig
	ln  net.Listener

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // both ends of every forwarded connection
}

// StartDelayProxy listens and forwards until Close; it returns once it is listening.
func StartDelayProxy(cfg DelayProxyConfig) (*DelayProxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("delay proxy: %w", err)
	}
	p := &DelayProxy{cfg: cfg, ln: ln, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *DelayProxy) Addr() string { return p.ln.Addr().String() }

// Close stops listening, cuts every forwarded connection and waits for the proxy's
// goroutines. It is idempotent.
func (p *DelayProxy) Close() error {
	p.closeOnce.Do(func() {
		close(p.done)
		_ = p.ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
	})
	p.wg.Wait()
	return nil
}

func (p *DelayProxy) serve() {
	defer p.wg.Done()
	// Dials in progress end when the proxy closes: Close closes the listener, and Accept's
	// error returns here, which cancels ctx.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slots := make(chan struct{}, p.cfg.MaxConns)
	for {
		c, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer func() { <-slots }()
			p.forward(ctx, c)
		}()
	}
}

// track adds c to the connections Close cuts; false (and c closed) when the proxy is
// closing already.
func (p *DelayProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		_ = c.Close()
		return false
	default:
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *DelayProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// forward connects down (the accepted connection) to the target and relays both ways.
func (p *DelayProxy) forward(ctx context.Context, down net.Conn) {
	if !p.track(down) {
		return
	}
	defer p.untrack(down)
	d := net.Dialer{Timeout: 5 * time.Second}
	up, err := d.DialContext(ctx, "tcp", p.cfg.Target)
	if err != nil {
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	// Either direction failing cuts the connection: closing both ends wakes the other
	// direction's reader and writer.
	var once sync.Once
	cut := func() { once.Do(func() { _ = down.Close(); _ = up.Close() }) }
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.relay(up, down, cut) }()
	go func() { defer wg.Done(); p.relay(down, up, cut) }()
	wg.Wait()
}

// relay copies src to dst, each read written Delay after it was read. At end of stream it
// passes a half close on; on any error it cuts the connection.
func (p *DelayProxy) relay(dst, src net.Conn, cut func()) {
	q := newDelayQueue(p.cfg.Buffer)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the writer
		defer wg.Done()
		timer := time.NewTimer(0)
		<-timer.C
		defer timer.Stop()
		for {
			ch, ok := q.pop()
			if !ok {
				if q.clean() {
					halfClose(dst)
				}
				return
			}
			if wait := time.Until(ch.due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-p.done:
					q.abort()
					cut()
					return
				}
			}
			_, err := dst.Write(ch.b)
			q.release(len(ch.b))
			if err != nil {
				q.abort()
				cut()
				return
			}
		}
	}()
	buf := make([]byte, min(32<<10, p.cfg.Buffer-chunkOverhead))
	for {
		n, err := src.Read(buf)
		if n > 0 {
			b := append([]byte(nil), buf[:n]...)
			if !q.push(b, time.Now().Add(p.cfg.Delay)) {
				break // the writer gave up
			}
		}
		if err != nil {
			q.finish(isEOF(err))
			if !isEOF(err) {
				cut()
			}
			break
		}
	}
	wg.Wait()
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// halfClose passes an end of stream on without closing the other direction.
func halfClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// chunkOverhead is what one queued read costs in the buffer besides its bytes, so many
// tiny reads cannot hold an unbounded number of chunks.
const chunkOverhead = 64

type delayChunk struct {
	b   []byte
	due time.Time
}

// delayQueue holds one direction's reads, in order, until they are due: at most limit
// bytes (counting chunkOverhead per read). One goroutine pushes (the reader), one pops
// (the writer).
type delayQueue struct {
	mu      sync.Mutex
	cond    sync.Cond
	chunks  []delayChunk
	used    int
	limit   int
	eof     bool // the reader saw end of stream (or an error: then !ok)
	ok      bool // the stream ended cleanly
	aborted bool // the writer gave up
}

func newDelayQueue(limit int) *delayQueue {
	q := &delayQueue{limit: limit}
	q.cond.L = &q.mu
	return q
}

// push queues b, waiting while the queue is full; false when the writer gave up.
func (q *delayQueue) push(b []byte, due time.Time) bool {
	cost := len(b) + chunkOverhead
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.used+cost > q.limit && !q.aborted {
		q.cond.Wait()
	}
	if q.aborted {
		return false
	}
	q.chunks = append(q.chunks, delayChunk{b, due})
	q.used += cost
	q.cond.Broadcast()
	return true
}

// pop takes the oldest chunk, waiting while there is none; false once the stream ended
// and everything was taken, or the queue was aborted.
func (q *delayQueue) pop() (delayChunk, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.chunks) == 0 && !q.eof && !q.aborted {
		q.cond.Wait()
	}
	if q.aborted || len(q.chunks) == 0 {
		return delayChunk{}, false
	}
	ch := q.chunks[0]
	q.chunks[0] = delayChunk{}
	q.chunks = q.chunks[1:]
	return ch, true
}

// release frees the room of a chunk that was written.
func (q *delayQueue) release(n int) {
	q.mu.Lock()
	q.used -= n + chunkOverhead
	q.cond.Broadcast()
	q.mu.Unlock()
}

// finish marks the end of the stream: clean (end of file) or not.
func (q *delayQueue) finish(clean bool) {
	q.mu.Lock()
	q.eof, q.ok = true, clean
	q.cond.Broadcast()
	q.mu.Unlock()
}

// clean reports whether the stream ended at end of file.
func (q *delayQueue) clean() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.eof && q.ok && !q.aborted
}

// abort wakes and stops the reader.
func (q *delayQueue) abort() {
	q.mu.Lock()
	q.aborted = true
	q.chunks = nil
	q.cond.Broadcast()
	q.mu.Unlock()
}
