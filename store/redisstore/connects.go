package redisstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// maxConnectBatch is the most Connects written in one batch.
const maxConnectBatch = 256

// connectQueue gathers the Connects that arrive while a batch of them is being written, so
// a connection storm pays three round trips (index, presence scripts, index) per batch
// rather than per client. A lone Connect starts its batch at once: no waiting for company.
type connectQueue struct {
	mu      sync.Mutex
	waiting []*connectCall
	running bool // a flusher goroutine owns the queue
	wg      sync.WaitGroup
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
	q := &s.connects
	q.mu.Lock()
	q.waiting = append(q.waiting, c)
	if !q.running {
		q.running = true
		q.wg.Add(1)
		go s.flushConnects()
	}
	q.mu.Unlock()
	select {
	case o := <-c.done:
		return o.res, o.err
	case <-c.ctx.Done():
		// As with any write whose answer is lost, it may still happen: a retry of the
		// same session is answered with the first result.
		return store.ConnectResult{}, fmt.Errorf("connect: %w", c.ctx.Err())
	}
}

// flushConnects writes batches until no Connect is waiting.
func (s *Store) flushConnects() {
	q := &s.connects
	defer q.wg.Done()
	for {
		q.mu.Lock()
		batch := q.waiting
		if len(batch) > maxConnectBatch {
			batch = batch[:maxConnectBatch:maxConnectBatch]
			q.waiting = append([]*connectCall(nil), q.waiting[maxConnectBatch:]...)
		} else {
			q.waiting = nil
		}
		if len(batch) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		s.connectBatch(batch)
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
	ctx, cancel := batchContext(live)
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
func batchContext(batch []*connectCall) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, c := range batch {
		d, ok := c.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.WithoutCancel(c.ctx))
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(batch[0].ctx), latest)
}
