package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

const (
	// noticeKeep is how long a node's notices stay after the last Notify, in case the
	// node is gone for good and never takes them.
	noticeKeep = time.Hour
	// maxTake caps the notices one TakeNotices returns (Lua's unpack takes a few thousand
	// values at most).
	maxTake = 1000
	// takenKeep is how long the copy of what one TakeNotices took is kept for that call's
	// retries: longer than go-redis spends retrying.
	takenKeep = time.Minute
)

// Notify appends notices at the tail of node's list and pushes the list's expiry to an
// hour from now, in one MULTI. A retry after a lost reply may append them twice; a notice
// is a hint, and acting on one twice is harmless.
func (s *Store) Notify(ctx context.Context, node string, ns ...store.Notice) error {
	if node == "" {
		return errors.New("notify: empty node")
	}
	vals := make([]any, len(ns))
	for i, n := range ns {
		if err := n.Validate(); err != nil {
			return fmt.Errorf("notify %q: notice %d: %w", node, i, err)
		}
		vals[i] = encodeNotice(n)
	}
	if len(vals) == 0 {
		return nil
	}
	key := s.keys.notices(node)
	cmds, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.RPush(ctx, key, vals...)
		pipe.PExpire(ctx, key, noticeKeep)
		return nil
	})
	// A command Redis refused to queue (OOM, NOREPLICAS) makes EXEC answer only
	// EXECABORT; the refused command holds the reason.
	for _, cmd := range cmds {
		if cerr := cmd.Err(); cerr != nil && !redis.HasErrorPrefix(cerr, "EXECABORT") {
			err = cerr
			break
		}
	}
	return s.fail("notify", err)
}

// TakeNotices removes and returns up to max (at most 1000) of node's notices, oldest
// first, with LPOP in a script that keeps a copy of what it took for a minute under a
// key named for this call, so that a go-redis retry of the call returns the same notices
// rather than taking more and losing the first ones. A stored notice that cannot be
// decoded is logged and dropped.
func (s *Store) TakeNotices(ctx context.Context, node string, max int) ([]store.Notice, error) {
	if node == "" {
		return nil, errors.New("take notices: empty node")
	}
	if max <= 0 {
		return nil, nil
	}
	token := make([]byte, 12)
	_, _ = rand.Read(token)
	return s.takeNotices(ctx, node, min(max, maxTake), hex.EncodeToString(token))
}

// takeNotices is TakeNotices for the call named token.
func (s *Store) takeNotices(ctx context.Context, node string, n int, token string) ([]store.Notice, error) {
	vals, err := s.scripts.take.Run(ctx, s.rdb,
		[]string{s.keys.notices(node), s.keys.taken(node, token)},
		n, takenKeep.Milliseconds()).StringSlice()
	if err != nil {
		return nil, s.fail("take notices", err)
	}
	var ns []store.Notice
	for _, v := range vals {
		n, err := decodeNotice(v)
		if err != nil {
			s.log.Warn("redisstore: dropped a notice that cannot be decoded", "node", node, "err", err)
			continue
		}
		ns = append(ns, n)
	}
	return ns, nil
}
