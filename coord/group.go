package coord

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// Group owns a coordinator's goroutines, so that its Close can stop them and wait for them.
// The zero Group is not usable; call NewGroup.
type Group struct {
	closed   chan struct{}
	mu       sync.Mutex
	stopping bool
	wg       sync.WaitGroup
	once     sync.Once
	cleanups map[string]chan struct{} // see cleanup
}

// NewGroup returns a Group that is not closed.
func NewGroup() *Group {
	return &Group{closed: make(chan struct{}), cleanups: map[string]chan struct{}{}}
}

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

// cleanup runs f on a goroutine of g once the previous cleanup of key has ended, and returns
// at once; pending's channel closes once every cleanup of key begun so far has ended (nil if
// none is under way). So a new registration waits for a failed one's background release,
// which would delete the new entry. Once Close began, f is dropped: Close ends the session.
func (g *Group) cleanup(key string, f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		return
	}
	prev, done := g.cleanups[key], make(chan struct{})
	g.cleanups[key] = done
	g.wg.Go(func() {
		defer func() {
			g.mu.Lock()
			if g.cleanups[key] == done {
				delete(g.cleanups, key)
			}
			g.mu.Unlock()
			close(done)
		}()
		if prev != nil {
			select {
			case <-prev:
			case <-g.closed:
				return
			}
		}
		f()
	})
}

func (g *Group) pending(key string) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cleanups[key]
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

// Deliver runs the loop behind a Watch method (see Coordinator) on a goroutine of g: follow
// sends the full current state, then every change, until it must start over, and says
// whether to do so at once (after a reconnect, say) rather than after a pause that grows
// from 50ms to a second while it keeps failing.
func Deliver[T any](ctx context.Context, g *Group, follow func(ctx context.Context, send func(T)) (again bool)) (<-chan T, error) {
	out := make(chan T, 1)
	err := g.Go(func() {
		defer close(out)
		ctx, cancel := notify.CancelOn(ctx, g.Closed(), nil)
		defer cancel()
		send := func(v T) { notify.SendLatest(out, v) }
		const minPause, maxPause = 50 * time.Millisecond, time.Second
		pause := minPause
		for ctx.Err() == nil {
			if follow(ctx, send) {
				pause = minPause
				continue
			}
			notify.Sleep(ctx, pause, nil)
			pause = min(2*pause, maxPause)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
