// Package watcher holds one process's copy of the cluster's live node set. It follows the
// coordinator's member watch (MemberWatch; the ZooKeeper backend re-arms its one-shot
// watches and re-lists after reconnects) and offers the current set, a check that a node is
// live under a given epoch, and subscriptions to join and leave events. Routers, monitors
// and nodes use it.
package watcher

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// Kind says what happened to a member.
type Kind int

const (
	// Join: a member entered the live set (or came back under a new epoch).
	Join Kind = iota + 1
	// Leave: a member left the live set (or its old epoch did, on re-registration).
	Leave
	// Update: a member's data changed without a new epoch.
	Update
)

func (k Kind) String() string {
	switch k {
	case Join:
		return "join"
	case Leave:
		return "leave"
	case Update:
		return "update"
	}
	return "unknown"
}

// Event is one change of the live set. A member that re-registers under a new epoch gives a
// Leave of the old epoch and then a Join of the new one.
type Event struct {
	Kind   Kind
	Member coord.Member
}

// Watcher holds the live set. Its methods are safe for concurrent use.
type Watcher struct {
	log *slog.Logger

	mu      sync.RWMutex
	members map[string]coord.Member
	version uint64
	changed chan struct{}
	subs    map[*Subscription]struct{}

	cancel context.CancelFunc
	done   chan struct{}
}

// MemberWatch is what a Watcher needs of the coordinator; coord.Membership provides it.
// The channel delivers the whole live set first and again after every change, and is closed
// when ctx ends or the coordinator closes.
type MemberWatch interface {
	WatchMembers(ctx context.Context) (<-chan []coord.Member, error)
}

var _ MemberWatch = coord.Coordinator(nil)

// Start begins watching and returns once the first member set has arrived.
func Start(ctx context.Context, c MemberWatch, log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.Default()
	}
	wctx, cancel := context.WithCancel(context.Background())
	ch, err := c.WatchMembers(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch members: %w", err)
	}
	w := &Watcher{
		log:     log.With("component", "watcher"),
		members: map[string]coord.Member{},
		changed: make(chan struct{}),
		subs:    map[*Subscription]struct{}{},
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	select {
	case set, ok := <-ch:
		if !ok {
			cancel()
			return nil, fmt.Errorf("watch members: closed before the first set: %w", coord.ErrClosed)
		}
		w.apply(set)
	case <-ctx.Done():
		cancel()
		return nil, fmt.Errorf("watch members: %w", ctx.Err())
	}
	go func() {
		defer close(w.done)
		for set := range ch {
			w.apply(set)
		}
	}()
	return w, nil
}

// Close stops watching and closes every subscription. Idempotent.
func (w *Watcher) Close() {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	for s := range w.subs {
		s.close()
	}
	w.subs = map[*Subscription]struct{}{}
}

// apply installs a new set and tells subscribers what changed.
func (w *Watcher) apply(set []coord.Member) {
	next := make(map[string]coord.Member, len(set))
	for _, m := range set {
		next[m.ID] = m
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var events []Event
	for id, old := range w.members {
		m, ok := next[id]
		if !ok || m.Epoch != old.Epoch {
			events = append(events, Event{Leave, old})
		}
	}
	for id, m := range next {
		old, ok := w.members[id]
		switch {
		case !ok || old.Epoch != m.Epoch:
			events = append(events, Event{Join, m})
		case old != m:
			events = append(events, Event{Update, m})
		}
	}
	if len(events) == 0 {
		return
	}
	// Leaves first, then joins; each group by id, for a stable order.
	sort.SliceStable(events, func(i, j int) bool {
		if events[i].Kind != events[j].Kind {
			return events[i].Kind == Leave
		}
		return events[i].Member.ID < events[j].Member.ID
	})
	for _, e := range events {
		w.log.Info("live set", "event", e.Kind.String(), "member", e.Member.ID, "epoch", e.Member.Epoch)
	}
	w.members = next
	w.version++
	close(w.changed)
	w.changed = make(chan struct{})
	for s := range w.subs {
		s.push(events)
	}
}

// Members returns the live members sorted by id.
func (w *Watcher) Members() []coord.Member {
	w.mu.RLock()
	defer w.mu.RUnlock()
	out := make([]coord.Member, 0, len(w.members))
	for _, m := range w.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Get returns the live member with id.
func (w *Watcher) Get(id string) (coord.Member, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	m, ok := w.members[id]
	return m, ok
}

// Live reports whether node is live under exactly epoch.
func (w *Watcher) Live(node string, epoch int64) (coord.Member, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	m, ok := w.members[node]
	return m, ok && m.Epoch == epoch
}

// Lookup returns the live member with id (if any) and, read from the same set, the
// highest epoch among the live members (0 when there are none). Epochs are coordinator
// transaction ids and the set is read as a whole, so an epoch at or below that maximum
// which is not in the set has left it.
func (w *Watcher) Lookup(id string) (m coord.Member, ok bool, maxEpoch int64) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	for _, x := range w.members {
		maxEpoch = max(maxEpoch, x.Epoch)
	}
	m, ok = w.members[id]
	return m, ok, maxEpoch
}

// Changed returns a channel closed at the next change of the set.
func (w *Watcher) Changed() <-chan struct{} {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.changed
}

// Subscribe returns a subscription that receives every event from now on, in order. Its
// queue is unbounded (membership changes are rare), so a slow reader never loses one.
func (w *Watcher) Subscribe() *Subscription {
	s := &Subscription{w: w, signal: make(chan struct{}, 1)}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.subs[s] = struct{}{}
	return s
}

// Subscription is a stream of events. Next may be called by one goroutine at a time.
type Subscription struct {
	w      *Watcher
	mu     sync.Mutex
	queue  []Event
	closed bool
	signal chan struct{}
}

func (s *Subscription) push(events []Event) {
	s.mu.Lock()
	s.queue = append(s.queue, events...)
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *Subscription) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// Next returns the next event; ok is false when ctx ends or the subscription is closed.
func (s *Subscription) Next(ctx context.Context) (Event, bool) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			e := s.queue[0]
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return e, true
		}
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return Event{}, false
		}
		select {
		case <-s.signal:
		case <-ctx.Done():
			return Event{}, false
		}
	}
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.w.mu.Lock()
	delete(s.w.subs, s)
	s.w.mu.Unlock()
	s.close()
}
