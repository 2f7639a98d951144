package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

// scanBatch is how many index entries ClearNode handles per round of pipelined commands.
const scanBatch = 256

// ClearNode clears the presence of every client whose presence names node at epoch, and
// returns how many it cleared.
//
// It walks the node's index and compare-and-deletes each client's presence with a script.
// Entries whose presence names another node or none are removed from the index; entries
// whose presence names the node at another epoch (the client reconnected, or the node
// reasserted it) stay.
func (s *Store) ClearNode(ctx context.Context, node string, epoch int64) (int, error) {
	if node == "" {
		return 0, errors.New("clear node: empty node")
	}
	key := s.keys.node(node)
	cleared := 0
	var cursor uint64
	for {
		members, next, err := s.rdb.SScan(ctx, key, cursor, "", scanBatch).Result()
		if err != nil {
			return cleared, s.fail("clear node: scan index", err)
		}
		if len(members) > 0 {
			n, err := s.clearBatch(ctx, node, strconv.FormatInt(epoch, 10), members)
			cleared += n
			if err != nil {
				return cleared, err
			}
		}
		if next == 0 {
			// Every presence the node had at epoch is cleared (the index is a superset).
			if err := s.forgetEpoch(ctx, store.NodeEpoch{Node: node, Epoch: epoch}); err != nil {
				return cleared, s.fail("clear node: forget epoch", err)
			}
			return cleared, nil
		}
		cursor = next
	}
}

// clearBatch runs the compare-and-delete script for each client in one pipeline, then
// removes from the index the clients that are no longer on the node.
func (s *Store) clearBatch(ctx context.Context, node, epoch string, clients []string) (int, error) {
	calls := make([]scriptCall, len(clients))
	for i, c := range clients {
		calls[i] = scriptCall{keys: []string{s.keys.presence(c)}, args: []any{node, epoch}}
	}
	cmds, err := s.evalAll(ctx, s.scripts.clear, calls, noWait)
	if err != nil {
		return 0, s.fail("clear node", err)
	}
	cleared := 0
	var gone []string
	for i, cmd := range cmds {
		n, err := cmd.Int()
		if err != nil {
			return cleared, s.fail("clear node", err)
		}
		switch n {
		case 1:
			cleared++
			gone = append(gone, clients[i])
		case 0:
			gone = append(gone, clients[i])
		}
	}
	if err := s.unindexBatch(ctx, node, gone); err != nil {
		return cleared, s.fail("clear node: update index", err)
	}
	return cleared, nil
}

// unindex removes client from node's index, best effort: a failure is logged and leaves
// an extra entry, which the next ClearNode drops.
func (s *Store) unindex(ctx context.Context, node, client string) {
	if err := s.unindexBatch(ctx, node, []string{client}); err != nil {
		s.log.Warn("redisstore: unindex client", "client", client, "node", node, "err", err)
	}
}

// unindexBatch removes clients from node's index, then adds back any whose presence names
// node after all. A Connect on node writes the index after its presence, so either its
// index write comes after the removal, or its presence is visible to the check: an entry
// is never lost for a client on the node.
func (s *Store) unindexBatch(ctx context.Context, node string, clients []string) error {
	if len(clients) == 0 {
		return nil
	}
	key := s.keys.node(node)
	members := make([]any, len(clients))
	for i, c := range clients {
		members[i] = c
	}
	if err := s.rdb.SRem(ctx, key, members...).Err(); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	cmds := make([]*redis.StringCmd, len(clients))
	// Pipelined reports the first failed command, and a missing presence fails with
	// redis.Nil, so look at each command.
	_, _ = s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, c := range clients {
			cmds[i] = pipe.HGet(ctx, s.keys.presence(c), "node")
		}
		return nil
	})
	var back []any
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			// In doubt, keep the entries: an extra one costs the next ClearNode a
			// check, a missing one leaves a presence no reaper clears.
			_ = s.rdb.SAdd(ctx, key, members...).Err()
			return fmt.Errorf("check presence: %w", err)
		}
		if cmd.Val() == node {
			back = append(back, clients[i])
		}
	}
	if len(back) > 0 {
		if err := s.rdb.SAdd(ctx, key, back...).Err(); err != nil {
			return fmt.Errorf("add back: %w", err)
		}
	}
	return nil
}
