package redisstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

// maxBatch is the most calls written in one batch.
const maxBatch = 256

// batchQueue gathers the calls (Connects, Peeks) that arrive while a batch of them is
// being written, so a connection storm pays a few round trips per batch rather than per
// client. A lone call starts its batch at once: no waiting for company. One flusher
// goroutine at a time owns the queue; it writes batches until none waits, then ends.
type batchQueue[C any] struct {
	mu      sync.Mutex
	waiting []C
	running bool
	wg      *sync.WaitGroup // the Store's: Close waits for a flusher under way
}

// add queues c and makes sure a flusher runs write.
func (q *batchQueue[C]) add(c C, write func([]C)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.waiting = append(q.waiting, c)
	if q.running {
		return
	}
	q.running = true
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
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
			write(batch)
		}
	}()
}

// waitingCalls is how many calls wait for a batch to start (for tests).
func (q *batchQueue[C]) waitingCalls() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}

// connectCall is one Connect waiting for its batch.
type connectCall struct {
	ctx  context.Context
	p    store.Presence
	args []any
	done chan connectOutcome // buffered: the flusher never blocks on a caller gone
}

type connectOutcome struct {
	res store.ConnectResult
	err error
}

// connectBatched queues c and waits for its outcome or its context.
func (s *Store) connectBatched(c *connectCall) (store.ConnectResult, error) {
	s.connects.add(c, s.connectBatch)
	select {
	case o := <-c.done:
		return o.res, o.err
	case <-c.ctx.Done():
		// As with any write whose answer is lost, it may still happen: a retry of the
		// same session is answered with the first result.
		return store.ConnectResult{}, fmt.Errorf("connect: %w", c.ctx.Err())
	}
}

// connectBatch writes one batch. Its phases keep the order one Connect has (see
// Connect): every client's index entry, then every presence script (one pipeline), then
// the index entries again; a phase that fails fails every Connect of the batch it did not
// finish for. Answers go out before the previous nodes' index entries are cleaned up.
func (s *Store) connectBatch(batch []*connectCall) {
	live := batch[:0:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.done <- connectOutcome{err: fmt.Errorf("connect: %w", err)}
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := batchContext(live, func(c *connectCall) context.Context { return c.ctx })
	defer cancel()
	failAll := func(err error) {
		for _, c := range live {
			c.done <- connectOutcome{err: err}
		}
	}
	groups := groupByNodeEpoch(live)
	for ne, clients := range groups {
		if err := s.index(ctx, ne.Node, ne.Epoch, clients...); err != nil {
			failAll(s.fail("connect: index", err))
			return
		}
	}
	calls := make([]scriptCall, len(live))
	for i, c := range live {
		calls[i] = scriptCall{keys: s.presenceKeys(c.p.Client), args: append(c.args, store.MaxPending)}
	}
	cmds, err := s.evalAll(ctx, s.scripts.connect, calls, write)
	if err != nil {
		failAll(s.fail("connect", err))
		return
	}
	outcomes := make([]connectOutcome, len(live))
	for i, c := range live {
		vals, err := sliceOf(cmds[i], nil)
		if err != nil {
			outcomes[i].err = s.fail("connect", err)
			continue
		}
		res, dropped, err := parseConnect(c.p.Client, vals)
		if err != nil {
			outcomes[i].err = fmt.Errorf("connect: %w", err)
			continue
		}
		if dropped > 0 {
			s.log.Warn("redisstore: dropped the oldest pending takeovers of a client",
				"client", c.p.Client, "dropped", dropped, "kept", store.MaxPending)
		}
		outcomes[i].res = res
	}
	for ne, clients := range groups {
		if err := s.index(ctx, ne.Node, ne.Epoch, clients...); err != nil {
			s.log.Warn("redisstore: index connected clients", "clients", len(clients), "node", ne.Node, "err", err)
		}
	}
	for i, c := range live {
		c.done <- outcomes[i]
	}
	moved := map[string][]string{} // previous node -> clients that left it
	for i, c := range live {
		if o := outcomes[i]; o.err == nil && o.res.Prev.Online() && o.res.Prev.Node != c.p.Node {
			moved[o.res.Prev.Node] = append(moved[o.res.Prev.Node], c.p.Client)
		}
	}
	for node, clients := range moved {
		if err := s.unindexBatch(ctx, node, clients); err != nil {
			s.log.Warn("redisstore: unindex clients that moved", "clients", len(clients), "node", node, "err", err)
		}
	}
}

// groupByNodeEpoch lists the batch's clients by the node and epoch they connect under
// (on a node, one pair).
func groupByNodeEpoch(batch []*connectCall) map[store.NodeEpoch][]string {
	m := map[store.NodeEpoch][]string{}
	for _, c := range batch {
		ne := store.NodeEpoch{Node: c.p.Node, Epoch: c.p.Epoch}
		m[ne] = append(m[ne], c.p.Client)
	}
	return m
}

// batchContext lasts as long as the batch's most patient caller: until the latest of
// their deadlines (each caller stops waiting at its own), or without one if any has none.
func batchContext[C any](batch []C, ctxOf func(C) context.Context) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, c := range batch {
		d, ok := ctxOf(c).Deadline()
		if !ok {
			return context.WithCancel(context.WithoutCancel(ctxOf(c)))
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(ctxOf(batch[0])), latest)
}

// peekCall is one Peek waiting for its batch.
type peekCall struct {
	ctx  context.Context
	call scriptCall
	done chan peekOutcome // buffered
}

type peekOutcome struct {
	cmd *redis.Cmd
	err error
}

// peekBatched runs one peek script in the next batch (one pipeline for all of them: a
// storm of new sessions each reads its mailbox) and returns its command.
func (s *Store) peekBatched(ctx context.Context, call scriptCall) (*redis.Cmd, error) {
	c := &peekCall{ctx: ctx, call: call, done: make(chan peekOutcome, 1)}
	s.peeks.add(c, s.peekBatch)
	select {
	case o := <-c.done:
		return o.cmd, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Store) peekBatch(batch []*peekCall) {
	live := batch[:0:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.done <- peekOutcome{err: err}
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := batchContext(live, func(c *peekCall) context.Context { return c.ctx })
	defer cancel()
	calls := make([]scriptCall, len(live))
	for i, c := range live {
		calls[i] = c.call
	}
	cmds, err := s.evalAll(ctx, s.scripts.peek, calls, noWait)
	for i, c := range live {
		if err != nil {
			c.done <- peekOutcome{err: err}
			continue
		}
		c.done <- peekOutcome{cmd: cmds[i]}
	}
}
