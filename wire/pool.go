package wire

import (
	"context"
	"fmt"
	"sync"
)

// Pool keeps one live Conn per address, dialing on demand. Its methods are safe for
// concurrent use.
type Pool struct {
	opts DialOptions

	mu      sync.Mutex
	closed  bool
	entries map[string]*poolEntry
	dials   sync.WaitGroup // running dial goroutines
}

// poolEntry is one address's Conn, or the dial producing it. conn and err are set before
// ready is closed and never change after.
type poolEntry struct {
	ready  chan struct{}
	cancel context.CancelFunc // stops the dial
	conn   *Conn
	err    error
}

// errDropped is what calls pending on a dropped Conn see.
var errDropped = fmt.Errorf("%w: dropped from pool", ErrConnLost)

// NewPool returns an empty Pool dialing with opts.
func NewPool(opts DialOptions) *Pool {
	return &Pool{opts: opts, entries: make(map[string]*poolEntry)}
}

// Get returns a live Conn for addr, dialing when there is none or the old one is Done.
// Concurrent Gets for one address share one dial, which runs on its own (bounded by the
// DialTimeout), so a caller whose ctx ends gives up waiting without failing the others.
// The Conn may still break at any time; its calls then fail with ErrConnLost.
func (p *Pool) Get(ctx context.Context, addr string) (*Conn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, fmt.Errorf("pool get %s: %w", addr, ErrClosed)
		}
		e := p.entries[addr]
		if e == nil || e.failed() {
			e = p.startDial(addr)
		}
		p.mu.Unlock()

		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err != nil {
			return nil, e.err
		}
		select {
		case <-e.conn.Done():
			// Broke since it was dialed; the next round replaces (and reaps) it.
		default:
			return e.conn, nil
		}
	}
}

// failed reports whether e is finished and unusable: the dial failed or the Conn is Done.
func (e *poolEntry) failed() bool {
	select {
	case <-e.ready:
	default:
		return false
	}
	if e.err != nil {
		return true
	}
	select {
	case <-e.conn.Done():
		return true
	default:
		return false
	}
}

// startDial installs a new entry for addr and dials in a goroutine the pool owns. p.mu is
// held; a replaced entry with a Conn is reaped by that goroutine.
func (p *Pool) startDial(addr string) *poolEntry {
	old := p.entries[addr]
	ctx, cancel := context.WithCancel(context.Background())
	e := &poolEntry{ready: make(chan struct{}), cancel: cancel}
	p.entries[addr] = e
	p.dials.Add(1)
	go func() {
		defer p.dials.Done()
		defer cancel()
		if old != nil && old.conn != nil {
			_ = old.conn.Close()
		}
		conn, err := Dial(ctx, addr, p.opts)
		p.mu.Lock()
		stale, closed := p.entries[addr] != e, p.closed
		p.mu.Unlock()
		if stale {
			// Dropped, or the pool closed, while dialing: waiters must not see a
			// context error they would take for their own.
			if conn != nil {
				conn.closeWith(errDropped)
			}
			conn, err = nil, errDropped
			if closed {
				err = fmt.Errorf("pool get %s: %w", addr, ErrClosed)
			}
		}
		e.conn, e.err = conn, err
		close(e.ready)
	}()
	return e
}

// Drop closes and forgets the Conn for addr; calls pending on it fail with ErrConnLost.
// A dial in progress for addr is abandoned.
func (p *Pool) Drop(addr string) {
	p.mu.Lock()
	e := p.entries[addr]
	delete(p.entries, addr)
	p.mu.Unlock()
	if e == nil {
		return
	}
	e.cancel()
	<-e.ready
	if e.conn != nil {
		e.conn.closeWith(errDropped)
	}
}

// Close closes every Conn, abandons dials in progress and waits for them. It is idempotent.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	entries := p.entries
	p.entries = make(map[string]*poolEntry)
	p.mu.Unlock()
	for _, e := range entries {
		e.cancel()
	}
	p.dials.Wait()
	for _, e := range entries {
		if e.conn != nil {
			_ = e.conn.Close()
		}
	}
	return nil
}
