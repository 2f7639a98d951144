package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

const (
	// noticeKeep is how long a node's notices stay after the last Notify, in case the
	// node is gone for good and never confirms them.
	noticeKeep = time.Hour
	// maxTake caps the notices one TakeNotices returns, which bounds the reply.
	maxTake = 1000
)

// Notify appends notices at the tail of node's list, each under the next sequence number
// of node's counter, and pushes the expiry of both keys to an hour from now, in one
// script. A retry after a lost reply may append them twice, under new numbers; a notice
// is a hint, and acting on one twice is harmless.
func (s *Store) Notify(ctx context.Context, node string, ns ...store.Notice) error {
	if node == "" {
		return errors.New("notify: empty node")
	}
	args := make([]any, 0, len(ns)+1)
	args = append(args, noticeKeep.Milliseconds())
	for i, n := range ns {
		if err := n.Validate(); err != nil {
			return fmt.Errorf("notify %q: notice %d: %w", node, i, err)
		}
		args = append(args, encodeNotice(n))
	}
	if len(ns) == 0 {
		return nil
	}
	cmd, err := s.eval(ctx, write, s.scripts.notify, s.keys.noticeKeys(node), args...)
	if err == nil {
		err = cmd.Err()
	}
	return s.fail("notify", err)
}

// TakeNotices returns up to max (at most 1000) of node's notices, oldest first, with one
// LRANGE: it removes nothing, so a take whose reply is lost loses nothing, and a retry
// returns the same notices. A stored notice that cannot be decoded (which no version of
// this package writes) is logged and deleted, so it is not read again at every take.
func (s *Store) TakeNotices(ctx context.Context, node string, max int) ([]store.Notice, error) {
	if node == "" {
		return nil, errors.New("take notices: empty node")
	}
	if max <= 0 {
		return nil, nil
	}
	key := s.keys.notices(node)
	vals, err := s.rdb.LRange(ctx, key, 0, int64(min(max, maxTake))-1).Result()
	if err != nil {
		return nil, s.fail("take notices", err)
	}
	var ns []store.Notice
	for _, v := range vals {
		n, err := decodeStoredNotice(v)
		if err != nil {
			s.log.Warn("redisstore: deleting a notice that cannot be decoded", "node", node, "err", err)
			if err := s.rdb.LRem(ctx, key, 1, v).Err(); err != nil {
				s.log.Warn("redisstore: delete a notice that cannot be decoded", "node", node, "err", err)
			}
			continue
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// DoneNotices removes node's notices whose sequence number is upTo or less, from the head
// of its list, in one script.
func (s *Store) DoneNotices(ctx context.Context, node string, upTo uint64) error {
	if node == "" {
		return errors.New("done notices: empty node")
	}
	cmd, err := s.eval(ctx, noWait, s.scripts.done, []string{s.keys.notices(node)}, strconv.FormatUint(upTo, 10))
	if err == nil {
		err = cmd.Err()
	}
	return s.fail("done notices", err)
}

// decodeStoredNotice reads one entry of a node's list: "<seq>,<encoded notice>".
func decodeStoredNotice(v string) (store.Notice, error) {
	seq, body, ok := strings.Cut(v, ",")
	if !ok {
		return store.Notice{}, fmt.Errorf("decode notice: %w: no sequence number", errCorrupt)
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return store.Notice{}, fmt.Errorf("decode notice: %w: sequence number %.24q", errCorrupt, seq)
	}
	notice, err := decodeNotice(body)
	if err != nil {
		return store.Notice{}, err
	}
	notice.Seq = n
	return notice, nil
}
