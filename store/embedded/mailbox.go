package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
)

// maxPeek caps the messages one Peek returns, as the Redis store does.
const maxPeek = 1000

// Append adds m at the tail of m.To's mailbox unless a message with m.ID is already there
// (Duplicate) or the mailbox holds limit messages (store.ErrMailboxFull, returned with the
// depth and presence filled in). The id check, the append and the presence read are one
// transaction, durable when Append returns. While the disk is full (see the package
// documentation, Errors) it still recognises a duplicate and a full mailbox, and refuses
// anything else with store.ErrStoreFull.
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
	lowDisk := s.reserve.check()
	client, value := name(m.To), encodeMessage(m)
	var res store.AppendResult
	var out appendOutcome
	run := func(tx *bolt.Tx) error {
		var err error
		res, out, err = bucketsOf(tx).append(client, m, value, limit, lowDisk == nil)
		return err
	}
	var err error
	if lowDisk == nil {
		err = s.update(ctx, run)
	} else {
		err = s.view(ctx, run) // it will not write: no commit needed
	}
	switch {
	case err != nil:
		return store.AppendResult{}, s.fail("append", err)
	case out == appendFull:
		return res, fmt.Errorf("append %q to %q: %w (limit %d)", m.ID, m.To, store.ErrMailboxFull, limit)
	case out == appendRefused:
		return store.AppendResult{}, s.fail("append", lowDisk)
	}
	return res, nil
}

// appendOutcome is what Append's transaction did.
type appendOutcome int

const (
	appendAdded     appendOutcome = iota
	appendDuplicate               // the id is in the mailbox already
	appendFull                    // the mailbox holds its limit
	appendRefused                 // a new message, but writing was not allowed
)

// append is Append's transaction: it adds message m, encoded as value, to client's
// mailbox if its id is new, the mailbox holds fewer than limit messages and write allows.
func (b buckets) append(client []byte, m store.Message, value []byte, limit int, write bool) (store.AppendResult, appendOutcome, error) {
	var res store.AppendResult
	rec, err := b.record(m.To)
	if err != nil {
		return res, 0, err
	}
	box, err := b.mailbox(client)
	if err != nil {
		return res, 0, err
	}
	res.Presence, res.Depth = rec.cur, box.depth
	switch {
	case b.ids.Get(idKey(client, m.ID)) != nil:
		res.Duplicate = true
		return res, appendDuplicate, nil
	case box.depth >= limit:
		return res, appendFull, nil
	case !write:
		return res, appendRefused, nil
	}
	seq := box.next
	if err := b.messages.Put(seqKey(client, seq), value); err != nil {
		return res, 0, fmt.Errorf("put message: %w", err)
	}
	if err := b.ids.Put(idKey(client, m.ID), binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return res, 0, fmt.Errorf("put id: %w", err)
	}
	if err := b.expiry.Put(expiryKey(m.Expires, client, seq), nil); err != nil {
		return res, 0, fmt.Errorf("put expiry: %w", err)
	}
	box.next++
	box.depth++
	res.Depth = box.depth
	return res, appendAdded, b.setMailbox(client, box)
}

// Peek returns up to n messages (at most 1000) from the head of the client's mailbox,
// oldest first, after deleting the expired messages at the head. A message that expired
// behind an unexpired one is returned: the caller skips it and acknowledges it.
//
// Peek reads in a read transaction; only when the head has expired does it delete and
// read again in one write transaction.
func (s *Store) Peek(ctx context.Context, client string, n int) ([]store.Message, error) {
	if client == "" {
		return nil, errors.New("peek: empty client id")
	}
	if n <= 0 {
		return nil, nil
	}
	n = min(n, maxPeek)
	c, now := name(client), time.Now()
	var msgs []store.Message
	expiredHead := false
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		msgs, expiredHead, err = bucketsOf(tx).head(c, n, now)
		return err
	})
	if err == nil && expiredHead {
		err = s.update(ctx, func(tx *bolt.Tx) error {
			b := bucketsOf(tx)
			if err := b.dropExpiredHead(c, now); err != nil {
				return err
			}
			var err error
			msgs, _, err = b.head(c, n, now)
			return err
		})
	}
	if err != nil {
		return nil, s.fail("peek", err)
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
	c := name(client)
	owner, depth := false, 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		rec, err := b.record(client)
		owner = err == nil && owns(rec, session)
		if !owner {
			return err
		}
		for _, id := range ids {
			seq, v := b.first(c)
			if v == nil {
				break
			}
			headID, expires, err := messageMeta(v)
			if err != nil {
				return err
			}
			if headID != id {
				continue
			}
			if err := b.deleteMessage(c, seq, headID, expires); err != nil {
				return err
			}
		}
		box, err := b.mailbox(c)
		depth = box.depth
		return err
	})
	if err != nil {
		return 0, s.fail("ack", err)
	}
	if !owner {
		return 0, fmt.Errorf("ack %q: %w", client, store.ErrNotOwner)
	}
	return depth, nil
}

// Depth returns the number of messages in the client's mailbox, expired ones not yet
// deleted included.
func (s *Store) Depth(ctx context.Context, client string) (int, error) {
	if client == "" {
		return 0, errors.New("depth: empty client id")
	}
	var box mailbox
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		box, err = bucketsOf(tx).mailbox(name(client))
		return err
	})
	if err != nil {
		return 0, s.fail("depth", err)
	}
	return box.depth, nil
}

// mailbox reads the header of client's mailbox; none is the zero mailbox.
func (b buckets) mailbox(client []byte) (mailbox, error) {
	v := b.boxes.Get(client)
	if v == nil {
		return mailbox{}, nil
	}
	return decodeMailbox(v)
}

// setMailbox stores the header of client's mailbox, deleting it when the mailbox is empty:
// an empty mailbox leaves nothing behind, and its next message starts the numbering again.
func (b buckets) setMailbox(client []byte, box mailbox) error {
	if box.depth == 0 {
		if err := b.boxes.Delete(client); err != nil {
			return fmt.Errorf("delete mailbox: %w", err)
		}
		return nil
	}
	if err := b.boxes.Put(client, encodeMailbox(box)); err != nil {
		return fmt.Errorf("put mailbox: %w", err)
	}
	return nil
}

// first returns the sequence number and value of the oldest message in client's
// mailbox; v is nil when the mailbox is empty.
func (b buckets) first(client []byte) (seq uint64, v []byte) {
	k, v := b.messages.Cursor().Seek(client)
	if k == nil || !bytes.HasPrefix(k, client) {
		return 0, nil
	}
	return binary.BigEndian.Uint64(k[len(client):]), v
}

// head reads up to n messages from the head of client's mailbox. If the oldest message
// has expired at now it stops there and reports expired, with no messages.
func (b buckets) head(client []byte, n int, now time.Time) (msgs []store.Message, expired bool, err error) {
	c := b.messages.Cursor()
	for k, v := c.Seek(client); k != nil && bytes.HasPrefix(k, client) && len(msgs) < n; k, v = c.Next() {
		m, err := decodeMessage(v)
		if err != nil {
			return nil, false, err
		}
		if len(msgs) == 0 && m.Expired(now) {
			return nil, true, nil
		}
		msgs = append(msgs, m)
	}
	return msgs, false, nil
}

// dropExpiredHead deletes the messages at the head of client's mailbox that expired at
// now.
func (b buckets) dropExpiredHead(client []byte, now time.Time) error {
	for {
		seq, v := b.first(client)
		if v == nil {
			return nil
		}
		id, expires, err := messageMeta(v)
		if err != nil {
			return err
		}
		if now.Before(expires) {
			return nil
		}
		if err := b.deleteMessage(client, seq, id, expires); err != nil {
			return err
		}
	}
}

// deleteMessage deletes message seq (with id and expiry) from client's mailbox, with its
// index entries, and counts it out of the mailbox's depth.
func (b buckets) deleteMessage(client []byte, seq uint64, id string, expires time.Time) error {
	if err := b.messages.Delete(seqKey(client, seq)); err != nil {
		return fmt.Errorf("delete message: %w", err)
	}
	if err := b.ids.Delete(idKey(client, id)); err != nil {
		return fmt.Errorf("delete id: %w", err)
	}
	if err := b.expiry.Delete(expiryKey(expires, client, seq)); err != nil {
		return fmt.Errorf("delete expiry: %w", err)
	}
	box, err := b.mailbox(client)
	if err != nil {
		return err
	}
	box.depth = max(box.depth-1, 0)
	return b.setMailbox(client, box)
}
