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

// noticeKeep is how long a node's notices stay after the last Notify, in case the node is
// gone for good and never takes them.
const noticeKeep = time.Hour

// notices holds every node's notices in memory (see the package documentation, Notices).
// It is safe for concurrent use.
type notices struct {
	mu    sync.Mutex
	nodes map[string]*noticeQueue
}

// noticeQueue is one node's notices, oldest first, and when they are dropped untaken.
type noticeQueue struct {
	ns      []store.Notice
	expires time.Time
}

func newNotices() *notices { return &notices{nodes: map[string]*noticeQueue{}} }

// add appends ns to node's queue and keeps the queue until noticeKeep after now.
func (b *notices) add(node string, ns []store.Notice, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.nodes[node]
	if q == nil || expired(q.expires, now) {
		q = &noticeQueue{}
		b.nodes[node] = q
	}
	q.ns = append(q.ns, ns...)
	q.expires = now.Add(noticeKeep)
}

// take removes and returns up to n of node's notices, oldest first.
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
	n = min(n, len(q.ns))
	out := slices.Clone(q.ns[:n])
	q.ns = append(q.ns[:0], q.ns[n:]...)
	if len(q.ns) == 0 {
		delete(b.nodes, node)
	}
	return out
}

// sweep drops the queues no node took within noticeKeep of their last notice.
func (b *notices) sweep(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for node, q := range b.nodes {
		if expired(q.expires, now) {
			delete(b.nodes, node)
		}
	}
}

// Notify appends notices for node. They are kept in memory (see the package
// documentation, Notices) until the node takes them, or for an hour after the last one.
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

// TakeNotices removes and returns up to max of node's notices, oldest first.
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
	return s.notices.take(node, max, time.Now()), nil
}

// live reports why a call may not go ahead: the store is closed or ctx has ended.
func (s *Store) live(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return ctx.Err()
}
