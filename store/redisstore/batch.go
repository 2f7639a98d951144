package redisstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// maxBatch is the most calls written in one batch.
const maxBatch = 256

// batchQueue gathers the calls of one kind (Connects, Disconnects, Peeks, Lookups) that
// arrive while a batch of them is being written, so a connection storm or a presence
// audit pays a few round trips per batch rather than per client. A lone call starts its
// batch at once: no waiting for company. One flusher goroutine at a time owns the queue;
// it writes batches until none waits, then ends.
//
// The queue stands between its callers and the outage guard (guard.go), so it does what
// the guard would have done for each of them on its own:
//   - a call asks its server's guard before it joins: while Redis is known out of reach
//     it fails at once, rather than waiting behind the batch under way (the outage's
//     probe) for its own deadline; the one call let through to probe (only into an idle
//     queue: see guard.join) makes its batch's round trip the probe;
//   - a call that gives up waiting (its deadline passed, in the queue or in a batch's
//     round trip that lasts for a more patient caller) tells the guard so at once, as a
//     call that found Redis out of reach, as its own round trip would have;
//   - a batch's round trip that found Redis out of reach counts for as many calls as it
//     carries (those that have not given up), its wait begun when its first call joined:
//     a batch of 30 that Redis did not answer is 30 calls that found it out of reach.
type batchQueue[C queuedCall] struct {
	s     *Store
	write func(ctx context.Context, batch []C) // writes a batch and answers each call

	mu      sync.Mutex
	waiting []C
	running bool
}

// queuedCall is what a batch queue needs of a call: its part the queue keeps (state),
// and a way to fail it. Each call is answered exactly once, by fail or by its batch.
type queuedCall interface {
	state() *callState
	fail(err error)
}

// callState is what every call in a batch queue carries.
type callState struct {
	ctx    context.Context
	key    string // the key the call's keys hash with: which server's guard it asks
	joined time.Time
	g      *guard      // its server's guard; nil when unknown (the hook still guards the call)
	probe  atomic.Bool // the call holds its guard's probe (see guard.join), until its batch takes it
	told   atomic.Bool // its guard was told of its outcome: it is counted once
}

// settle tells the guard, unless it was told already, of the call's outcome err: a call
// that gave up waiting (see gaveUp), or one its batch failed with no round trip the guard
// saw (a batch whose deadline had passed before it was sent).
func (q *callState) settle(err error) {
	if q.told.CompareAndSwap(false, true) {
		q.g.done(q.probe.Swap(false), q.joined, err, 1)
	}
}

// gaveUp settles a call that waited until its context ended: one that found Redis out of
// reach when its deadline passed, or that says nothing if it was cancelled or had waited
// too briefly (see classify).
func (q *callState) gaveUp() { q.settle(ended(q.ctx)) }

// ended is the error of a context that ended, or whose deadline passed (under load its
// timer may not have fired yet); nil otherwise.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

func (q *callState) state() *callState { return q }

// call is a queued call answered with a T.
type call[T any] struct {
	callState
	done chan result[T] // buffered: the flusher never blocks on a caller gone
}

type result[T any] struct {
	val T
	err error
}

// init readies c for ctx; key is a key of the call's (see callState).
func (c *call[T]) init(ctx context.Context, key string) {
	c.ctx, c.key, c.done = ctx, key, make(chan result[T], 1)
}

func (c *call[T]) fail(err error) { c.done <- result[T]{err: err} }
func (c *call[T]) answer(v T)     { c.done <- result[T]{val: v} }

// wait returns the call's answer, or its context's error when that comes first. As with
// any write whose answer is lost, a write given up on may still happen.
func (c *call[T]) wait() (T, error) {
	select {
	case r := <-c.done:
		if r.err != nil {
			c.settle(r.err)
		}
		return r.val, r.err
	case <-c.ctx.Done():
		c.gaveUp()
		var zero T
		return zero, c.ctx.Err()
	}
}

// add queues calls, or fails at once those whose server is known out of reach, and
// makes sure a flusher runs.
func (q *batchQueue[C]) add(calls ...C) {
	now := time.Now()
	q.mu.Lock()
	idle := !q.running
	q.mu.Unlock()
	admitted := calls[:0:0]
	for _, c := range calls {
		b := c.state()
		b.joined = now
		b.g = q.s.guardOf(b.ctx, b.key)
		probe, err := b.g.join(idle)
		if err != nil {
			c.fail(err)
			continue
		}
		b.probe.Store(probe)
		admitted = append(admitted, c)
	}
	if len(admitted) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.waiting = append(q.waiting, admitted...)
	if q.running {
		return
	}
	q.running = true
	q.s.flushers.Add(1)
	go q.flush()
}

// flush writes batches until none waits. It is the queue's one flusher; the Store's Close
// waits for it.
func (q *batchQueue[C]) flush() {
	defer q.s.flushers.Done()
	for {
		q.mu.Lock()
		batch := q.waiting
		if len(batch) > maxBatch {
			batch = batch[:maxBatch:maxBatch]
			q.waiting = append([]C(nil), q.waiting[maxBatch:]...)
		} else {
			q.waiting = nil
		}
		if len(batch) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		if live := dropExpired(batch); len(live) > 0 {
			ctx, info, cancel := batchContext(live)
			q.write(ctx, live)
			cancel()
			info.dropProbes()
		}
	}
}

// dropExpired fails the calls whose context ended while they waited (telling their
// guards, see gaveUp) and returns the others.
func dropExpired[C queuedCall](batch []C) []C {
	live := batch[:0:0]
	for _, c := range batch {
		b := c.state()
		if err := ended(b.ctx); err != nil {
			b.settle(err)
			c.fail(err)
			continue
		}
		live = append(live, c)
	}
	return live
}

// batchKey marks the context of a batch's round trips: what the guard counts them as.
type batchKey struct{}

// batchInfo is what a batch's round trips are for its guards.
type batchInfo struct {
	since time.Time // when its first call joined the queue

	mu     sync.Mutex              // a cluster's node hooks run concurrently
	calls  map[*guard][]*callState // its calls, by their server's guard
	probes map[*guard]bool         // guards whose probe is a call of the batch, until it is sent
}

// tell marks the batch's calls for g that have not given up as told, for a round trip
// that found g's server out of reach, and returns how many there were (at least one: a
// round trip of the batch to another server, such as a cluster node holding a node
// index, counts as one call).
func (b *batchInfo) tell(g *guard) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.calls[g] {
		if c.told.CompareAndSwap(false, true) {
			n++
		}
	}
	return max(n, 1)
}

// batchIn returns the batch a round trip of ctx is for, or nil.
func batchIn(ctx context.Context) *batchInfo {
	b, _ := ctx.Value(batchKey{}).(*batchInfo)
	return b
}

// admitIn is guard.admit for a round trip of ctx: the probe, if the batch it is part of
// holds g's probe and has not yet sent it.
func admitIn(ctx context.Context, g *guard) (probe bool, err error) {
	if b := batchIn(ctx); b != nil {
		b.mu.Lock()
		probe := b.probes[g]
		delete(b.probes, g)
		b.mu.Unlock()
		if probe {
			return true, nil
		}
	}
	return g.admit()
}

// dropProbes ends the probes the batch held and never sent.
func (b *batchInfo) dropProbes() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for g := range b.probes {
		g.dropProbe()
	}
	b.probes = nil
}

// batchContext lasts as long as the batch's most patient caller: until the latest of
// their deadlines (each caller stops waiting at its own), or without one if any has none.
// It carries the batch's batchInfo, which it returns.
func batchContext[C queuedCall](batch []C) (context.Context, *batchInfo, context.CancelFunc) {
	info := &batchInfo{since: batch[0].state().joined, calls: map[*guard][]*callState{}, probes: map[*guard]bool{}}
	var latest time.Time
	unbounded := false
	for _, c := range batch {
		b := c.state()
		if b.joined.Before(info.since) {
			info.since = b.joined
		}
		info.calls[b.g] = append(info.calls[b.g], b)
		if b.probe.Swap(false) {
			info.probes[b.g] = true
		}
		d, ok := b.ctx.Deadline()
		if !ok {
			unbounded = true
		}
		if d.After(latest) {
			latest = d
		}
	}
	ctx := context.WithValue(context.WithoutCancel(batch[0].state().ctx), batchKey{}, info)
	if unbounded {
		ctx, cancel := context.WithCancel(ctx)
		return ctx, info, cancel
	}
	ctx, cancel := context.WithDeadline(ctx, latest)
	return ctx, info, cancel
}

// waitingCalls is how many calls wait for a batch to start (for tests).
func (q *batchQueue[C]) waitingCalls() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}
