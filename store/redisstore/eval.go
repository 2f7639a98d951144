package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// scriptCall is one run of a script: its keys and arguments.
type scriptCall struct {
	keys []string
	args []any
}

// evalAll runs script once for each call, all in one pipeline of EVALSHA, and returns
// the commands in calls' order. Calls that Redis answered NOSCRIPT (its script cache was
// lost: a restart, a failover, SCRIPT FLUSH) run again in a second pipeline after the
// script is loaded; only those, so no call runs twice for that reason.
//
// The error is for the pipeline as a whole: a transport failure or a cancelled context,
// after which no command's outcome is known. Otherwise each command holds its own
// outcome, which may be a Redis error such as OOM.
func (s *Store) evalAll(ctx context.Context, script *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	run := func(which []int) error {
		_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, i := range which {
				cmds[i] = script.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
			}
			return nil
		})
		return transportError(err)
	}
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	if err := run(all); err != nil {
		return nil, err
	}
	var missing []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return cmds, nil
	}
	if err := script.Load(ctx, s.rdb).Err(); err != nil {
		return nil, err
	}
	if err := run(missing); err != nil {
		return nil, err
	}
	return cmds, nil
}

// transportError is err unless it is an error Redis answered to one command, which
// Pipelined reports as its own although the other commands may have succeeded.
func transportError(err error) error {
	var rerr redis.Error
	if err == nil || errors.As(err, &rerr) {
		return nil
	}
	return err
}
