package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

// Connect records p as the client's presence and returns the presence it replaced.
//
// The node index is written around the script: before it, so that a Connect that fails
// half-way leaves at worst an index entry with no presence (which ClearNode drops), and
// after it, so that a reaper that removed the entry meanwhile cannot leave the new
// presence unindexed. The second write is best effort: a failure is logged, not returned,
// because the presence is already written and the first write normally covers it.
func (s *Store) Connect(ctx context.Context, p store.Presence) (store.Presence, error) {
	if err := checkPresence(p); err != nil {
		return store.Presence{}, fmt.Errorf("connect: %w", err)
	}
	args, err := presenceArgs(p)
	if err != nil {
		return store.Presence{}, fmt.Errorf("connect: %w", err)
	}
	if err := s.index(ctx, p.Node, p.Client); err != nil {
		return store.Presence{}, s.fail("connect: index", err)
	}
	vals, err := s.scripts.connect.Run(ctx, s.rdb, []string{s.keys.presence(p.Client)}, args...).Slice()
	if err != nil {
		return store.Presence{}, s.fail("connect", err)
	}
	prev, err := parsePresence(p.Client, vals)
	if err != nil {
		return store.Presence{}, fmt.Errorf("connect: %w", err)
	}
	if err := s.index(ctx, p.Node, p.Client); err != nil {
		s.log.Warn("redisstore: index connected client", "client", p.Client, "node", p.Node, "err", err)
	}
	if prev.Online() && prev.Node != p.Node {
		s.unindex(ctx, prev.Node, p.Client)
	}
	return prev, nil
}

func checkPresence(p store.Presence) error {
	switch {
	case p.Client == "":
		return errors.New("empty client id")
	case p.Node == "":
		return fmt.Errorf("client %q: empty node", p.Client)
	case p.Session == "":
		return fmt.Errorf("client %q: empty session", p.Client)
	}
	return nil
}

// Reassert updates the epoch of the client's presence if session still owns it;
// store.ErrNotOwner otherwise.
func (s *Store) Reassert(ctx context.Context, client, session string, epoch int64) error {
	if client == "" {
		return errors.New("reassert: empty client id")
	}
	ok, err := s.scripts.reassert.Run(ctx, s.rdb, []string{s.keys.presence(client)},
		session, strconv.FormatInt(epoch, 10)).Int()
	if err != nil {
		return s.fail("reassert", err)
	}
	if ok != 1 {
		return fmt.Errorf("reassert %q: %w", client, store.ErrNotOwner)
	}
	return nil
}

// Disconnect clears the client's presence if session still owns it, reporting whether it
// did. A retried call whose first attempt cleared the presence reports false.
func (s *Store) Disconnect(ctx context.Context, client, session string) (bool, error) {
	if client == "" {
		return false, errors.New("disconnect: empty client id")
	}
	node, err := s.scripts.disconnect.Run(ctx, s.rdb, []string{s.keys.presence(client)}, session).Text()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, s.fail("disconnect", err)
	}
	s.unindex(ctx, node, client)
	return true, nil
}

// Lookup returns the client's presence and mailbox depth in one round trip.
func (s *Store) Lookup(ctx context.Context, client string) (store.Presence, int, error) {
	if client == "" {
		return store.Presence{}, 0, errors.New("lookup: empty client id")
	}
	var pres *redis.SliceCmd
	var depth *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pres = pipe.HMGet(ctx, s.keys.presence(client), presenceFieldNames...)
		depth = pipe.ZCard(ctx, s.keys.order(client))
		return nil
	})
	if err != nil {
		return store.Presence{}, 0, s.fail("lookup", err)
	}
	p, err := parsePresence(client, pres.Val())
	if err != nil {
		return store.Presence{}, 0, fmt.Errorf("lookup: %w", err)
	}
	return p, int(depth.Val()), nil
}
