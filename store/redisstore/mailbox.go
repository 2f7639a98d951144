package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

const (
	// keyGrace is how long a mailbox's keys outlive its latest expiry. It covers clock
	// differences between the nodes, which compute expiries, and Redis, which enforces
	// the keys' TTL, and keeps a message appended already expired from deleting the
	// mailbox it joins at once.
	keyGrace = time.Minute
	// maxPeek caps the messages one Peek returns, which bounds the script's work and the
	// reply's size.
	maxPeek = 1000
)

// Append adds m at the tail of m.To's mailbox unless a message with m.ID is already there
// (Duplicate) or the mailbox holds limit messages (store.ErrMailboxFull, returned with the
// depth and presence filled in). The id check and the append are one script, so a retried
// Append reports Duplicate and never adds the message twice.
func (s *Store) Append(ctx context.Context, m store.Message, limit int) (store.AppendResult, error) {
	switch {
	case m.To == "":
		return store.AppendResult{}, errors.New("append: empty recipient")
	case m.ID == "":
		return store.AppendResult{}, fmt.Errorf("append to %q: empty message id", m.To)
	case m.Expires.IsZero():
		return store.AppendResult{}, fmt.Errorf("append %q to %q: no expiry", m.ID, m.To)
	case limit <= 0:
		return store.AppendResult{}, fmt.Errorf("append %q to %q: limit %d must be positive", m.ID, m.To, limit)
	}
	keyExpiry := expiryMillis(m.Expires) + keyGrace.Milliseconds()
	vals, err := s.scripts.append.Run(ctx, s.rdb,
		[]string{s.keys.queue(m.To), s.keys.messages(m.To), s.keys.presence(m.To)},
		m.ID, encodeMessage(m), limit, keyExpiry).Slice()
	if err != nil {
		return store.AppendResult{}, s.fail("append", err)
	}
	if len(vals) != 6 {
		return store.AppendResult{}, fmt.Errorf("append: script returned %d values, want 6", len(vals))
	}
	status, _ := vals[0].(int64)
	depth, _ := vals[1].(int64)
	p, err := parsePresence(m.To, vals[2:])
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("append: %w", err)
	}
	res := store.AppendResult{Depth: int(depth), Duplicate: status == 1, Presence: p}
	if status == 2 {
		return res, fmt.Errorf("append %q to %q: %w (limit %d)", m.ID, m.To, store.ErrMailboxFull, limit)
	}
	return res, nil
}

// Peek returns up to n messages (at most 1000) from the head of the client's mailbox,
// oldest first, after deleting the expired messages at the head. A message that expired
// behind an unexpired one is returned: the caller skips it and acknowledges it.
func (s *Store) Peek(ctx context.Context, client string, n int) ([]store.Message, error) {
	if client == "" {
		return nil, errors.New("peek: empty client id")
	}
	if n <= 0 {
		return nil, nil
	}
	n = min(n, maxPeek)
	vals, err := s.scripts.peek.Run(ctx, s.rdb,
		[]string{s.keys.queue(client), s.keys.messages(client)},
		n, time.Now().UnixMilli()).StringSlice()
	if err != nil {
		return nil, s.fail("peek", err)
	}
	msgs := make([]store.Message, 0, len(vals))
	for _, v := range vals {
		m, err := decodeMessage(v)
		if err != nil {
			return nil, fmt.Errorf("peek %q: %w", client, err)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// Ack deletes the given messages from the head of the client's mailbox, in order, if
// session still owns the client's presence; store.ErrNotOwner otherwise. An id that is not
// at the head when its turn comes is skipped, so acknowledging twice changes nothing. It
// returns the depth left.
func (s *Store) Ack(ctx context.Context, client, session string, ids []string) (int, error) {
	if client == "" {
		return 0, errors.New("ack: empty client id")
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, session)
	for _, id := range ids {
		args = append(args, id)
	}
	depth, err := s.scripts.ack.Run(ctx, s.rdb,
		[]string{s.keys.presence(client), s.keys.queue(client), s.keys.messages(client)},
		args...).Int()
	if err != nil {
		return 0, s.fail("ack", err)
	}
	if depth < 0 {
		return 0, fmt.Errorf("ack %q: %w", client, store.ErrNotOwner)
	}
	return depth, nil
}

// Depth returns the number of messages in the client's mailbox.
func (s *Store) Depth(ctx context.Context, client string) (int, error) {
	if client == "" {
		return 0, errors.New("depth: empty client id")
	}
	n, err := s.rdb.LLen(ctx, s.keys.queue(client)).Result()
	if err != nil {
		return 0, s.fail("depth", err)
	}
	return int(n), nil
}
