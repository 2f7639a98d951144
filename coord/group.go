package coord

import "sync"

// Group owns a coordinator's goroutines, so that its Close can stop them and wait for them.
// The zero Group is not usable; call NewGroup.
type Group struct {
	closed   chan struct{}
	mu       sync.Mutex
	stopping bool
	wg       sync.WaitGroup
	once     sync.Once
}

// NewGroup returns a Group that is not closed.
func NewGroup() *Group { return &Group{closed: make(chan struct{})} }

// Go runs f on a goroutine that Close waits for; it fails with ErrClosed once Close has
// begun. f must return soon after Closed is closed.
func (g *Group) Go(f func()) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		return ErrClosed
	}
	g.wg.Go(f)
	return nil
}

// Closed is closed when Close begins.
func (g *Group) Closed() <-chan struct{} { return g.closed }

// Close refuses new goroutines, closes Closed, waits for the running ones, then runs after
// (the rest of the coordinator's Close). Idempotent: a later call waits for the first.
func (g *Group) Close(after func()) {
	g.once.Do(func() {
		g.mu.Lock()
		g.stopping = true
		g.mu.Unlock()
		close(g.closed)
		g.wg.Wait()
		after()
	})
}
