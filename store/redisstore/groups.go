package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

var _ store.Groups = (*Store)(nil)

// changeGroupLua adds ARGV[2..n+1] (n = ARGV[1]) to the group's sorted set and removes the
// rest of ARGV, in chunks (Lua's unpack takes a few thousand values at most), and returns
// the size after.
var changeGroupLua = redis.NewScript(`
local n = tonumber(ARGV[1])
local function each(from, to, cmd)
  local i = from
  while i <= to do
    local args = {}
    while i <= to and #args < 1000 do
      if cmd == 'ZADD' then args[#args+1] = 0 end
      args[#args+1] = ARGV[i]
      i = i + 1
    end
    redis.call(cmd, KEYS[1], unpack(args))
  end
end
each(2, n + 1, 'ZADD')
each(n + 2, #ARGV, 'ZREM')
return redis.call('ZCARD', KEYS[1])
`)

// ChangeGroup adds and removes members in one script run on the group's key.
func (s *Store) ChangeGroup(ctx context.Context, name string, add, remove []string) (int, error) {
	if err := store.CheckGroupChange(name, add, remove); err != nil {
		return 0, fmt.Errorf("change group: %w", err)
	}
	args := make([]any, 0, 1+len(add)+len(remove))
	args = append(args, len(add))
	for _, id := range add {
		args = append(args, id)
	}
	for _, id := range remove {
		args = append(args, id)
	}
	cmd, err := s.eval(ctx, write, changeGroupLua, []string{s.keys.group(name)}, args...)
	if err != nil {
		return 0, s.fail("change group", err)
	}
	n, err := cmd.Int()
	if err != nil {
		return 0, s.fail("change group", err)
	}
	return n, nil
}

// GroupMembers reads a page with ZRANGE BYLEX and the size with ZCARD, in one round trip.
func (s *Store) GroupMembers(ctx context.Context, name, after string, n int) ([]string, int, error) {
	if err := store.CheckGroupName(name); err != nil {
		return nil, 0, fmt.Errorf("group members: %w", err)
	}
	n = min(max(n, 0), store.MaxGroupPage)
	key := s.keys.group(name)
	from := "-"
	if after != "" {
		from = "(" + after
	}
	var page *redis.StringSliceCmd
	var size *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if n > 0 {
			page = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: key, Start: from, Stop: "+", ByLex: true, Count: int64(n)})
		}
		size = p.ZCard(ctx, key)
		return nil
	})
	if err != nil {
		return nil, 0, s.fail("group members", err)
	}
	var members []string
	if page != nil {
		members = page.Val()
	}
	return members, int(size.Val()), nil
}

// DeleteGroup unlinks the group's key.
func (s *Store) DeleteGroup(ctx context.Context, name string) (bool, error) {
	if err := store.CheckGroupName(name); err != nil {
		return false, fmt.Errorf("delete group: %w", err)
	}
	cmd, err := s.eval(ctx, write, deleteGroupLua, []string{s.keys.group(name)})
	if err != nil {
		return false, s.fail("delete group", err)
	}
	n, err := cmd.Int()
	if err != nil {
		return false, s.fail("delete group", err)
	}
	return n > 0, nil
}

// deleteGroupLua deletes the group's key; a script so that the delete waits for the
// replicas as the other writes do.
var deleteGroupLua = redis.NewScript(`return redis.call('UNLINK', KEYS[1])`)

// atoi reads a decimal hash field; a missing one is 0.
func atoi(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.New("not a number: " + strconv.Quote(s))
	}
	return n, nil
}
