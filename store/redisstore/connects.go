package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

// connectCall is one Connect waiting for its batch.
type connectCall struct {
	call[store.ConnectResult]
	p    store.Presence
	args []any
}

// connectBatch writes one batch. Its phases keep the order one Connect has (see
// Connect): every client's index entry, then every presence script (one pipeline), then
// the index entries again; a phase that fails fails every Connect of the batch it did not
// finish for. Answers go out before the previous nodes' index entries are cleaned up.
func (s *Store) connectBatch(ctx context.Context, live []*connectCall) {
	failAll := func(err error) {
		for _, c := range live {
			c.fail(err)
		}
	}
	groups := groupByNodeEpoch(live)
	for ne, clients := range groups {
		if err := s.index(ctx, ne.Node, ne.Epoch, clients...); err != nil {
			failAll(s.fail("connect: index", err))
			return
		}
	}
	// A caller whose deadline passed during the index round trip has been told it failed
	// (a node refuses the connection and undoes it with a Disconnect, which may already
	// have run): its presence must not be written after that.
	if live = dropExpired(live); len(live) == 0 {
		return
	}
	groups = groupByNodeEpoch(live)
	calls := make([]scriptCall, len(live))
	for i, c := range live {
		calls[i] = scriptCall{keys: s.presenceKeys(c.p.Client), args: append(c.args, store.MaxPending)}
	}
	cmds, err := s.evalAll(ctx, s.scripts.connect, calls, write)
	if err != nil {
		failAll(s.fail("connect", err))
		return
	}
	outcomes := make([]result[store.ConnectResult], len(live))
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
		outcomes[i].val = res
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
		if o := outcomes[i]; o.err == nil && o.val.Prev.Online() && o.val.Prev.Node != c.p.Node {
			moved[o.val.Prev.Node] = append(moved[o.val.Prev.Node], c.p.Client)
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

// peekCall is one Peek waiting for its batch.
type peekCall struct {
	call[*redis.Cmd]
	script scriptCall
}

// peekBatched runs one peek script in the next batch (one pipeline for all of them: a
// storm of new sessions each reads its mailbox) and returns its command.
func (s *Store) peekBatched(ctx context.Context, sc scriptCall) (*redis.Cmd, error) {
	c := &peekCall{script: sc}
	c.init(ctx, sc.keys[0])
	s.peeks.add(c)
	return c.wait()
}

func (s *Store) peekBatch(ctx context.Context, live []*peekCall) {
	calls := make([]scriptCall, len(live))
	for i, c := range live {
		calls[i] = c.script
	}
	cmds, err := s.evalAll(ctx, s.scripts.peek, calls, noWait)
	for i, c := range live {
		if err != nil {
			c.fail(err)
			continue
		}
		c.answer(cmds[i])
	}
}

// disconnectCall is one Disconnect waiting for its batch.
type disconnectCall struct {
	call[bool]
	client, session string
}

// disconnectBatch writes one batch: every disconnect script (one pipeline), then, once
// the callers are answered, the cleared clients out of their nodes' indexes (as one
// Disconnect does: best effort, an entry left over costs the reaper a check).
func (s *Store) disconnectBatch(ctx context.Context, live []*disconnectCall) {
	calls := make([]scriptCall, len(live))
	for i, c := range live {
		calls[i] = scriptCall{keys: []string{s.keys.presence(c.client)}, args: []any{c.session}}
	}
	cmds, err := s.evalAll(ctx, s.scripts.disconnect, calls, noWait)
	if err != nil {
		for _, c := range live {
			c.fail(err)
		}
		return
	}
	cleared := map[string][]string{} // node -> clients cleared from it
	for i, c := range live {
		node, err := textOf(cmds[i], nil)
		switch {
		case errors.Is(err, redis.Nil):
			c.answer(false)
		case err != nil:
			c.fail(err)
		default:
			c.answer(true)
			cleared[node] = append(cleared[node], c.client)
		}
	}
	for node, clients := range cleared {
		if err := s.unindexBatch(ctx, node, clients); err != nil {
			s.log.Warn("redisstore: unindex disconnected clients", "clients", len(clients), "node", node, "err", err)
		}
	}
}

// lookupCall is one Lookup waiting for its batch; i is its place in its LookupAll.
type lookupCall struct {
	call[store.LookupResult]
	client string
	i      int
}

// lookupBatch reads the batch's presences and mailbox depths in one pipeline.
func (s *Store) lookupBatch(ctx context.Context, live []*lookupCall) {
	pres := make([]*redis.SliceCmd, len(live))
	normal := make([]*redis.IntCmd, len(live))
	high := make([]*redis.IntCmd, len(live))
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, c := range live {
			pres[i] = pipe.HMGet(ctx, s.keys.presence(c.client), presenceFieldNames...)
			normal[i], high[i] = s.depthCmds(ctx, pipe, c.client)
		}
		return nil
	})
	if err := transportError(err); err != nil {
		for _, c := range live {
			c.fail(err)
		}
		return
	}
	for i, c := range live {
		if err := cmp.Or(pres[i].Err(), normal[i].Err(), high[i].Err()); err != nil {
			c.fail(err)
			continue
		}
		p, err := parsePresence(c.client, pres[i].Val())
		if err != nil {
			c.fail(err)
			continue
		}
		c.answer(store.LookupResult{Presence: p, Depth: int(normal[i].Val() + high[i].Val())})
	}
}
