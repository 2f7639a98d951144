package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

// The (node, epoch) pairs under which presence was recorded live in one sorted set, all
// scored 0 so that Redis orders them by member, bytewise: the node name, a NUL, then the
// epoch as 16 hex digits with the sign bit flipped (so negative epochs sort first). A
// node's pairs are next to each other, oldest epoch first. The key has no hash tag: it is
// one key, on one slot of a cluster, written once per (node, epoch) by each process that
// connects clients under it.

// epochSuffixLen is the length of a member's epoch part: the NUL and 16 hex digits.
const epochSuffixLen = 17

func epochMember(ne store.NodeEpoch) string {
	return ne.Node + "\x00" + fmt.Sprintf("%016x", uint64(ne.Epoch)^(1<<63))
}

func parseEpochMember(m string) (store.NodeEpoch, error) {
	if len(m) < epochSuffixLen+1 || m[len(m)-epochSuffixLen] != 0 {
		return store.NodeEpoch{}, fmt.Errorf("%w: recorded epoch %q", errCorrupt, m)
	}
	u, err := strconv.ParseUint(m[len(m)-epochSuffixLen+1:], 16, 64)
	if err != nil {
		return store.NodeEpoch{}, fmt.Errorf("%w: recorded epoch %q", errCorrupt, m)
	}
	return store.NodeEpoch{Node: m[:len(m)-epochSuffixLen], Epoch: int64(u ^ (1 << 63))}, nil
}

// epochCache remembers the pairs this process has recorded, so that a node connecting
// many clients under one epoch records it once. It is bounded: past maxCachedEpochs it
// starts again (the cost is one more ZADD per pair).
type epochCache struct {
	mu sync.Mutex
	m  map[store.NodeEpoch]struct{}
}

const maxCachedEpochs = 4096

func (c *epochCache) has(ne store.NodeEpoch) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[ne]
	return ok
}

func (c *epochCache) add(ne store.NodeEpoch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedEpochs {
		c.m = map[store.NodeEpoch]struct{}{}
	}
	c.m[ne] = struct{}{}
}

func (c *epochCache) drop(ne store.NodeEpoch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, ne)
}

// RecordedEpochs returns up to max (at most store.MaxRecordedEpochs) recorded (node, epoch)
// pairs after the pair after, in the sorted set's order, with one ZRANGE BYLEX.
func (s *Store) RecordedEpochs(ctx context.Context, after store.NodeEpoch, max int) ([]store.NodeEpoch, error) {
	if max <= 0 {
		return nil, nil
	}
	start := "-"
	if after != (store.NodeEpoch{}) {
		start = "(" + epochMember(after)
	}
	members, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: s.keys.epochs(), Start: start, Stop: "+", ByLex: true, Count: int64(min(max, store.MaxRecordedEpochs)),
	}).Result()
	if err != nil {
		return nil, s.fail("recorded epochs", err)
	}
	out := make([]store.NodeEpoch, 0, len(members))
	for _, m := range members {
		ne, err := parseEpochMember(m)
		if err != nil {
			return nil, fmt.Errorf("recorded epochs: %w", err)
		}
		out = append(out, ne)
	}
	return out, nil
}

// index adds clients to node's index and, unless this process did so already, records the
// pair (node, epoch), in one pipeline.
func (s *Store) index(ctx context.Context, node string, epoch int64, clients ...string) error {
	ne := store.NodeEpoch{Node: node, Epoch: epoch}
	members := make([]any, len(clients))
	for i, c := range clients {
		members[i] = c
	}
	if s.epochs.has(ne) {
		return s.rdb.SAdd(ctx, s.keys.node(node), members...).Err()
	}
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.SAdd(ctx, s.keys.node(node), members...)
		pipe.ZAddNX(ctx, s.keys.epochs(), redis.Z{Member: epochMember(ne)})
		return nil
	})
	if err != nil {
		return err
	}
	s.epochs.add(ne)
	return nil
}

// forgetEpoch drops a pair ClearNode has cleared.
func (s *Store) forgetEpoch(ctx context.Context, ne store.NodeEpoch) error {
	s.epochs.drop(ne)
	return s.rdb.ZRem(ctx, s.keys.epochs(), epochMember(ne)).Err()
}
