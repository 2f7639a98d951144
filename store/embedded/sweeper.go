package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sweepChunk is how many expired messages one sweep transaction deletes, so a large sweep
// holds up the writes queued behind it for one chunk at a time.
const sweepChunk = 1000

// sweepLoop is the sweeper: at start and then every interval it deletes the messages
// whose expiry passed, wherever they are in their mailbox, and the notices no node took
// within an hour, until the store closes. Peek
// already hides and deletes expired messages at a mailbox's head; the sweeper keeps the
// mailboxes of clients that never come back from holding expired messages for ever.
func (s *Store) sweepLoop(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		// The store's closing ends a sweep: update returns ErrClosed.
		now := time.Now()
		s.notices.sweep(now)
		n, err := s.sweep(context.Background(), now)
		switch {
		case errors.Is(err, ErrClosed):
			return
		case err != nil:
			s.log.Warn("embedded store: sweep expired messages", "dir", s.dir, "deleted", n, "err", err)
		case n > 0:
			s.log.Debug("embedded store: swept expired messages", "dir", s.dir, "deleted", n)
		}
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
	}
}

// sweep deletes every message that expired at now and returns how many it deleted. It
// looks in a read transaction first, so a sweep that finds nothing costs no commit.
func (s *Store) sweep(ctx context.Context, now time.Time) (int, error) {
	bound := expiryBound(now)
	found := false
	err := s.view(ctx, func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketExpiry).Cursor().First()
		found = k != nil && expiredKey(k, bound)
		return nil
	})
	if err != nil || !found {
		return 0, s.fail("sweep", err)
	}
	deleted := 0
	for {
		n, more := 0, false
		err := s.update(ctx, func(tx *bolt.Tx) error {
			var err error
			n, more, err = sweepSome(bucketsOf(tx), bound)
			return err
		})
		if err != nil {
			return deleted, s.fail("sweep", err)
		}
		deleted += n
		if !more {
			return deleted, nil
		}
	}
}

// expiredKey reports whether expiry index key k sorts below bound (nil: everything).
func expiredKey(k, bound []byte) bool {
	return bound == nil || bytes.Compare(k, bound) < 0
}

// sweepSome deletes up to sweepChunk of the messages whose expiry index keys sort below
// bound, and reports whether more remain.
func sweepSome(b buckets, bound []byte) (deleted int, more bool, err error) {
	var keys [][]byte
	c := b.expiry.Cursor()
	for k, _ := c.First(); k != nil && expiredKey(k, bound); k, _ = c.Next() {
		if len(keys) == sweepChunk {
			more = true
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		client, seq, ok := parseExpiryKey(k)
		if !ok {
			return deleted, more, fmt.Errorf("%w: expiry index key %x", errCorrupt, k)
		}
		v := b.messages.Get(seqKey(client, seq))
		if v == nil {
			// An entry without its message, which no write leaves behind.
			if err := b.expiry.Delete(k); err != nil {
				return deleted, more, fmt.Errorf("drop stale expiry entry: %w", err)
			}
			continue
		}
		id, expires, err := messageMeta(v)
		if err != nil {
			return deleted, more, err
		}
		if err := b.deleteMessage(client, seq, id, expires); err != nil {
			return deleted, more, err
		}
		deleted++
	}
	return deleted, more, nil
}
