package embedded

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

const (
	// noticeKeep is how long a node's notices stay after the last Notify, in case the
	// node is gone for good and never confirms them.
	noticeKeep = time.Hour
	// maxTake caps the notices one TakeNotices returns, as the Redis store does.
	maxTake = 1000
)

// notices holds every node's notices in memory (see the package documentation, Notices).
// It is safe for concurrent use.
type notices struct {
	mu    sync.Mutex
	nodes map[string]*noticeQueue
	last  uint64 // the last sequence number given to a notice, of any node
}

// noticeQueue is one node's notices, oldest first, and when they are dropped unconfirmed.
type noticeQueue struct {
	ns      []store.Notice
	expires time.Time
}

func newNotices() *notices { return &notices{nodes: map[string]*noticeQueue{}} }

// add appends ns to node's queue, each under the next sequence number, and keeps the
// queue until noticeKeep after now. A sequence number is one more than the last one
// given and at least now in Unix microseconds, so numbers grow in Notify order, for every
// node, even after a node's queue was dropped.
func (b *notices) add(node string, ns []store.Notice, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.nodes[node]
	if q == nil || expired(q.expires, now) {
		q = &noticeQueue{}
		b.nodes[node] = q
	}
	for _, n := range ns {
		b.last = max(b.last+1, uint64(max(now.UnixMicro(), 0)))
		n.Seq = b.last
		q.ns = append(q.ns, n)
	}
	q.expires = now.Add(noticeKeep)
}

// take returns up to n of node's notices, oldest first, and leaves them in the queue.
func (b *notices) take(node string, n int, now time.Time) []store.Notice {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.nodes[node]
	if q == nil {
		return nil
	}
	if expired(q.expires, now) {
		delete(b.nodes, node)
		return nil
	}
	return slices.Clone(q.ns[:min(n, len(q.ns))])
}

// done removes node's notices whose sequence number is upTo or less.
func (b *notices) done(node string, upTo uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.nodes[node]
	if q == nil {
		return
	}
	i := 0
	for i < len(q.ns) && q.ns[i].Seq <= upTo {
		i++
	}
	q.ns = slices.Delete(q.ns, 0, i)
	if len(q.ns) == 0 {
		delete(b.nodes, node)
	}
}

// sweep drops the queues no node confirmed within noticeKeep of their last notice.
func (b *notices) sweep(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for node, q := range b.nodes {
		if expired(q.expires, now) {
			delete(b.nodes, node)
		}
	}
}

// Notify appends notices for node, each under the next sequence number. They are kept
// in memory (see the package documentation, Notices) until the node confirms them, or
// for an hour after the last one.
func (s *Store) Notify(ctx context.Context, node string, ns ...store.Notice) error {
	if node == "" {
		return errors.New("notify: empty node")
	}
	for i, n := range ns {
		if err := n.Validate(); err != nil {
			return fmt.Errorf("notify %q: notice %d: %w", node, i, err)
		}
	}
	if err := s.live(ctx); err != nil {
		return s.fail("notify", err)
	}
	if len(ns) > 0 {
		s.notices.add(node, ns, time.Now())
	}
	return nil
}

// TakeNotices returns up to max (at most 1000) of node's notices, oldest first, without
// removing them.
func (s *Store) TakeNotices(ctx context.Context, node string, max int) ([]store.Notice, error) {
	if node == "" {
		return nil, errors.New("take notices: empty node")
	}
	if err := s.live(ctx); err != nil {
		return nil, s.fail("take notices", err)
	}
	if max <= 0 {
		return nil, nil
	}
	return s.notices.take(node, min(max, maxTake), time.Now()), nil
}

// DoneNotices removes node's notices whose sequence number is upTo or less.
func (s *Store) DoneNotices(ctx context.Context, node string, upTo uint64) error {
	if node == "" {
		return errors.New("done notices: empty node")
	}
	if err := s.live(ctx); err != nil {
		return s.fail("done notices", err)
	}
	s.notices.done(node, upTo)
	return nil
}

// live reports why a call may not go ahead: the store is closed or ctx has ended.
func (s *Store) live(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return ctx.Err()
}
