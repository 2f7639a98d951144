package redisstore

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// scriptCall is one run of a script: its keys and arguments.
type scriptCall struct {
	keys []string
	args []any
}

const (
	// maxTryAgain bounds how often a script run that Redis Cluster answered TRYAGAIN (its
	// keys are split between two nodes while their slot migrates) is sent again.
	maxTryAgain = 10
	// tryAgainPause is the first pause before it is; each later pause doubles, up to
	// maxPause: a slot's keys move in milliseconds.
	tryAgainPause = 5 * time.Millisecond
	maxPause      = 100 * time.Millisecond
)

// For evalAll's durable argument: write means the script's writes must be as durable as
// the store's Durability before the call succeeds; noWait that they need not be.
const (
	write  = true
	noWait = false
)

// evalAll runs script once for each call, all in one pipeline of EVALSHA, and returns
// the commands in calls' order. Calls that Redis answered NOSCRIPT (its script cache was
// lost: a restart, a failover, SCRIPT FLUSH) run again in a second pipeline after the
// script is loaded; only those, so no call runs twice for that reason. Calls answered
// TRYAGAIN run again after a short pause, a bounded number of times (every script is
// safe to run twice).
//
// With durable set (and a Durability other than none) each connection's share of every
// pipeline ends with a wait for replicas (see waitHook), in the same round trip, and a
// wait that was not satisfied fails the call as a whole with errNotDurable: its writes
// are on the primary but may not survive its loss, so the caller must not acknowledge
// them (a retry of the same call is safe).
//
// The error is for the pipeline as a whole: a transport failure or a cancelled context,
// after which no command's outcome is known. Otherwise each command holds its own
// outcome, which may be a Redis error such as OOM.
func (s *Store) evalAll(ctx context.Context, script *redis.Script, calls []scriptCall, durable bool) ([]*redis.Cmd, error) {
	var w *waiter
	if durable {
		ctx, w = s.durable(ctx)
	}
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
	which := make([]int, len(calls))
	for i := range which {
		which[i] = i
	}
	if err := run(which); err != nil {
		return nil, err
	}
	pause := tryAgainPause
	for attempt := 0; attempt < maxTryAgain; attempt++ {
		var missing, again []int
		for i, cmd := range cmds {
			switch err := cmd.Err(); {
			case redis.HasErrorPrefix(err, "NOSCRIPT"):
				missing = append(missing, i)
			case redis.IsTryAgainError(err), isOrder(err):
				again = append(again, i)
			}
		}
		if len(missing) == 0 && len(again) == 0 {
			break
		}
		if len(missing) > 0 {
			if err := script.Load(ctx, s.rdb).Err(); err != nil {
				return nil, err
			}
		}
		if len(again) > 0 {
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			pause = min(2*pause, maxPause)
		}
		// In their first order: a client's chained append runs must run as they were given.
		rerun := append(missing, again...)
		slices.Sort(rerun)
		if err := run(rerun); err != nil {
			return nil, err
		}
	}
	if err := w.Err(); err != nil {
		// A primary that refused the writes (NOREPLICAS under min-replicas-to-write, a
		// replica's READONLY) says more than the wait that followed them.
		for _, cmd := range cmds {
			if e := cmd.Err(); e != nil && isUnavailable(e) {
				return nil, e
			}
		}
		return nil, err
	}
	return cmds, nil
}

// eval runs script once (see evalAll) and returns its command, which holds the reply or
// Redis's error; the error is for what prevented any reply.
func (s *Store) eval(ctx context.Context, durable bool, script *redis.Script, keys []string, args ...any) (*redis.Cmd, error) {
	cmds, err := s.evalAll(ctx, script, []scriptCall{{keys: keys, args: args}}, durable)
	if err != nil {
		return nil, err
	}
	return cmds[0], nil
}

// evalEach runs script for each call (see evalAll) when only success matters: the first
// failure, the pipeline's or one run's, is the error, named by op.
func (s *Store) evalEach(ctx context.Context, op string, script *redis.Script, calls []scriptCall, durable bool) error {
	if len(calls) == 0 {
		return nil
	}
	cmds, err := s.evalAll(ctx, script, calls, durable)
	if err != nil {
		return s.fail(op, err)
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return s.fail(op, err)
		}
	}
	return nil
}

// isOrder reports an append run refused because the run before it in the same call has
// not run yet (see appendLua): sent again after it.
func isOrder(err error) bool { return redis.HasErrorPrefix(err, "ORDER") }

// transportError is err unless it is an error Redis answered to one command, which
// Pipelined reports as its own although the other commands may have succeeded.
func transportError(err error) error {
	var rerr redis.Error
	if err == nil || errors.As(err, &rerr) {
		return nil
	}
	return err
}
