// Package notify holds a value that changes over time and lets any number of goroutines wait
// for the next change without missing one: the latest-value pattern behind etcd's
// ReadyNotify and a lease session's Done channel.
package notify

import (
	"context"
	"sync"
	"time"
)

// Value holds the latest T. The zero Value holds the zero T and is ready to use.
type Value[T any] struct {
	mu      sync.Mutex
	v       T
	changed chan struct{}
}

// Get returns the current value and a channel that is closed at the next Set.
func (n *Value[T]) Get() (T, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.changed == nil {
		n.changed = make(chan struct{})
	}
	return n.v, n.changed
}

// Load returns the current value.
func (n *Value[T]) Load() T {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.v
}

// Set stores v and wakes every waiter. It never blocks, so it is safe in callbacks that must
// not block (go-zookeeper's event callback).
func (n *Value[T]) Set(v T) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.v = v
	if n.changed != nil {
		close(n.changed)
		n.changed = nil
	}
}

// Update applies f to the current value under the lock and stores the result.
func (n *Value[T]) Update(f func(T) T) T {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.v = f(n.v)
	if n.changed != nil {
		close(n.changed)
		n.changed = nil
	}
	return n.v
}

// Each calls fn at once and again after every change that watch reports, until ctx ends.
// watch returns a channel closed at the next change (a Value's Get, say). The channel for
// each wait is read before the fn call it follows, so a change while fn runs, or before
// the first call, is not missed: fn runs again after it. A loop that read its channel
// after fn lost those.
func Each(ctx context.Context, watch func() <-chan struct{}, fn func()) {
	for {
		next := watch()
		fn()
		select {
		case <-next:
		case <-ctx.Done():
			return
		}
	}
}

// SendLatest puts v in a one-slot channel, replacing an unread older value, so that a slow
// reader skips intermediate values but always gets the latest. Only one goroutine may send on
// out, so the replacement cannot race with another sender.
func SendLatest[T any](out chan T, v T) {
	select {
	case out <- v:
		return
	default:
	}
	select {
	case <-out:
	default:
	}
	out <- v
}

// CancelOn returns a context that also ends when a or b is closed (a nil channel never is):
// the bridge from a "stop" or "closed" channel to the calls that take a context. The caller
// must call cancel, which also ends the goroutine that watches the channels.
func CancelOn(ctx context.Context, a, b <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-ctx.Done():
		case <-a:
			cancel()
		case <-b:
			cancel()
		}
	}()
	return ctx, cancel
}

// Sleep waits d and reports true, or false as soon as ctx ends or stop (if not nil) is
// closed.
func Sleep(ctx context.Context, d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}
