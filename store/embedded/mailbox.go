package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
)

// maxPeek caps the messages one Peek returns, as the Redis store does.
const maxPeek = 1000

// Append adds each message at the tail of its recipient's mailbox unless its id is
// already there (Duplicate) or the mailbox holds limit messages (Err wraps
// store.ErrMailboxFull). The id checks, the appends and the presence reads of one call
// are one transaction, durable when Append returns; each message's expiry is the process
// clock at that transaction plus its TTL. While the disk is full (see the package
// documentation, Errors) it still recognises duplicates and full mailboxes, and gives
// every other message an Err that wraps store.ErrStoreFull.
func (s *Store) Append(ctx context.Context, limit int, msgs []store.Message) ([]store.AppendResult, error) {
	if err := store.CheckAppend(limit, msgs); err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return []store.AppendResult{}, nil
	}
	var res []store.AppendResult
	var outs []appendOutcome
	collapsed := false // a collapsed message's receipt was recorded
	run := func(write bool) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			now := time.Now()
			if write {
				// Registered first, whatever each append's outcome (Append's contract).
				if err := registerReceipts(tx, msgs, now); err != nil {
					return err
				}
				if err := createCollapse(tx, msgs); err != nil {
					return err
				}
				if err := createHigh(tx, msgs); err != nil {
					return err
				}
			}
			var err error
			if res, outs, err = bucketsOf(tx).appendAll(msgs, limit, write, now); err != nil {
				return err
			}
			if write {
				collapsed, err = endCollapsed(tx, msgs, res, now)
			}
			return err
		}
	}
	lowDisk := s.reserve.check()
	if lowDisk == nil {
		err := s.update(ctx, run(true))
		if isNoSpace(err) {
			// The commit failed for lack of disk and released the reserve; nothing was
			// written. Answer as a store low on disk does.
			lowDisk = s.reserve.check()
		}
		if lowDisk == nil && err != nil {
			return nil, s.fail("append", err)
		}
	}
	if lowDisk != nil {
		if err := s.view(ctx, run(false)); err != nil { // it will not write: no commit needed
			return nil, s.fail("append", err)
		}
	}
	for i, out := range outs {
		m := msgs[i]
		switch out {
		case appendFull:
			res[i].Err = fmt.Errorf("append %q to %q: %w (limit %d)", m.ID, m.To, store.ErrMailboxFull, limit)
		case appendRefused:
			res[i].Err = fmt.Errorf("append %q to %q: store in %q: %w", m.ID, m.To, s.dir, lowDisk)
		case appendTooManyKeys:
			res[i].Err = fmt.Errorf("append %q to %q: %w (limit %d)", m.ID, m.To, store.ErrTooManyCollapseKeys, m.CollapseLimit)
		}
	}
	if collapsed {
		s.rwake.broadcast()
	}
	return res, nil
}

// appendOutcome is what Append's transaction did with one message.
type appendOutcome int

const (
	appendAdded       appendOutcome = iota
	appendDuplicate                 // the id is in the mailbox already
	appendFull                      // the mailbox holds its limit
	appendRefused                   // a new message, but writing was not allowed
	appendTooManyKeys               // a new collapse key past the client's limit
)

// appendAll is Append's transaction: it appends each message in turn (see append) and
// returns one result and outcome per message.
func (b buckets) appendAll(msgs []store.Message, limit int, write bool, now time.Time) ([]store.AppendResult, []appendOutcome, error) {
	res := make([]store.AppendResult, len(msgs))
	outs := make([]appendOutcome, len(msgs))
	for i, m := range msgs {
		var err error
		if res[i], outs[i], err = b.append(m, limit, write, now); err != nil {
			return nil, nil, err
		}
	}
	return res, outs, nil
}

// append adds m to its recipient's mailbox, expiring at now plus its TTL, if its id is
// new, the mailbox holds fewer than limit messages and write allows.
func (b buckets) append(m store.Message, limit int, write bool, now time.Time) (store.AppendResult, appendOutcome, error) {
	var res store.AppendResult
	client := name(m.To)
	rec, err := b.record(m.To)
	if err != nil {
		return res, 0, err
	}
	box, err := b.mailbox(client)
	if err != nil {
		return res, 0, err
	}
	res.Presence, res.Depth = rec.cur, box.depth
	if v := b.ids.Get(idKey(client, m.ID)); v != nil {
		if len(v) != 8 {
			return res, 0, fmt.Errorf("%w: id entry of %q holds %d bytes", errCorrupt, m.ID, len(v))
		}
		res.Seq, res.Duplicate = binary.BigEndian.Uint64(v), true
		return res, appendDuplicate, nil
	}
	var replace string // the queued message with the same collapse key
	if m.CollapseKey != "" {
		old, keys, err := b.collapseState(client, m.CollapseKey, write)
		if err != nil {
			return res, 0, err
		}
		if old == "" && m.CollapseLimit > 0 && keys >= m.CollapseLimit {
			return res, appendTooManyKeys, nil
		}
		replace = old
	}
	depth := box.depth
	if replace != "" {
		depth-- // the new message takes the old one's place in the count
	}
	switch {
	case depth >= limit:
		return res, appendFull, nil
	case !write:
		return res, appendRefused, nil
	}
	if replace != "" {
		if err := b.remove(client, replace); err != nil {
			return res, 0, err
		}
		if box, err = b.mailbox(client); err != nil {
			return res, 0, err
		}
		res.Collapsed = replace
	}
	seq, err := b.nextSeq(now)
	if err != nil {
		return res, 0, err
	}
	expires := now.Add(m.TTL)
	if err := b.messages.Put(seqKey(client, seq), encodeMessage(m, expires)); err != nil {
		return res, 0, fmt.Errorf("put message: %w", err)
	}
	if err := b.ids.Put(idKey(client, m.ID), binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return res, 0, fmt.Errorf("put id: %w", err)
	}
	if err := b.expiry.Put(expiryKey(expires, client, seq), nil); err != nil {
		return res, 0, fmt.Errorf("put expiry: %w", err)
	}
	if m.Priority == store.PriorityHigh {
		if err := b.high.Put(seqKey(client, seq), highMark); err != nil {
			return res, 0, fmt.Errorf("put high lane entry: %w", err)
		}
	}
	if m.CollapseKey != "" {
		if err := b.collapse.Put(collapseKey(client, m.CollapseKey), append(binary.BigEndian.AppendUint64(nil, seq), m.ID...)); err != nil {
			return res, 0, fmt.Errorf("put collapse key: %w", err)
		}
	}
	box.depth++
	res.Seq, res.Depth = seq, box.depth
	return res, appendAdded, b.setMailbox(client, box)
}

// nextSeq gives out the next sequence number. Numbers are store-wide: one more than the
// last one given (kept in the meta bucket, so a mailbox that empties and loses its header
// never starts again), and at least the process clock in Unix microseconds, so even a
// store whose file was replaced goes on above the numbers it gave before.
func (b buckets) nextSeq(now time.Time) (uint64, error) {
	var last uint64
	if v := b.meta.Get(metaSeq); v != nil {
		if len(v) != 8 {
			return 0, fmt.Errorf("%w: last sequence number holds %d bytes", errCorrupt, len(v))
		}
		last = binary.BigEndian.Uint64(v)
	}
	seq := max(last+1, uint64(max(now.UnixMicro(), 0)))
	if err := b.meta.Put(metaSeq, binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return 0, fmt.Errorf("put sequence number: %w", err)
	}
	return seq, nil
}

// Peek returns up to n messages (at most 1000) of the normal lane of the client's mailbox
// whose sequence number is above after, oldest first, each with the TTL it has left on
// the process clock. Expired messages are never returned: those at the lane's head are
// deleted, those behind an unexpired one are skipped (and left to the sweeper).
//
// Peek reads in a read transaction; only when the head has expired does it delete and
// read again in one write transaction.
func (s *Store) Peek(ctx context.Context, client string, after uint64, n int) ([]store.Message, error) {
	return s.peekLane(ctx, "peek", client, store.PriorityNormal, after, n)
}

// peekLane is Peek of one lane of the client's mailbox.
func (s *Store) peekLane(ctx context.Context, what, client string, lane store.Priority, after uint64, n int) ([]store.Message, error) {
	if client == "" {
		return nil, fmt.Errorf("%s: empty client id", what)
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
		msgs, expiredHead, err = bucketsOf(tx).read(c, lane, after, n, now)
		return err
	})
	if err == nil && expiredHead {
		err = s.update(ctx, func(tx *bolt.Tx) error {
			b := bucketsOf(tx)
			if err := b.dropExpiredHead(c, lane, now); err != nil {
				return err
			}
			var err error
			msgs, _, err = b.read(c, lane, after, n, now)
			return err
		})
	}
	if err != nil {
		return nil, s.fail(what, err)
	}
	return msgs, nil
}

// read returns up to n messages of a lane of client's mailbox with a sequence number
// above after that have not expired at now, each with Priority set to the lane, and
// reports whether the lane's oldest message has expired.
func (b buckets) read(client []byte, lane store.Priority, after uint64, n int, now time.Time) (msgs []store.Message, expiredHead bool, err error) {
	it := b.lane(client, lane)
	if _, v := it.seek(0); v != nil {
		_, expires, err := messageMeta(v)
		if err != nil {
			return nil, false, err
		}
		expiredHead = expired(expires, now)
	}
	if after == math.MaxUint64 {
		return nil, expiredHead, nil
	}
	for seq, v := it.seek(after + 1); v != nil && len(msgs) < n; seq, v = it.next() {
		m, expires, err := decodeMessage(v)
		if err != nil {
			return nil, false, err
		}
		if expired(expires, now) {
			continue
		}
		m.Seq, m.TTL, m.Priority = seq, expires.Sub(now), lane
		msgs = append(msgs, m)
	}
	return msgs, expiredHead, nil
}

// Remove deletes the named messages from their mailboxes, wherever they are in them, in
// one transaction. Ids that are not there are ignored.
func (s *Store) Remove(ctx context.Context, items ...store.Removal) error {
	ids := 0
	for _, it := range items {
		if it.Client == "" {
			return errors.New("remove: empty client id")
		}
		ids += len(it.IDs)
	}
	if ids == 0 {
		return nil
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		for _, it := range items {
			c := name(it.Client)
			for _, id := range it.IDs {
				if err := b.remove(c, id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return s.fail("remove", err)
}

// remove deletes message id from client's mailbox, if it is there.
func (b buckets) remove(client []byte, id string) error {
	v := b.ids.Get(idKey(client, id))
	if v == nil {
		return nil
	}
	if len(v) != 8 {
		return fmt.Errorf("%w: id entry of %q holds %d bytes", errCorrupt, id, len(v))
	}
	seq := binary.BigEndian.Uint64(v)
	mv := b.messages.Get(seqKey(client, seq))
	if mv == nil {
		// An id entry without its message, which no write leaves behind.
		if err := b.ids.Delete(idKey(client, id)); err != nil {
			return fmt.Errorf("drop stale id entry: %w", err)
		}
		return nil
	}
	_, expires, err := messageMeta(mv)
	if err != nil {
		return err
	}
	return b.deleteMessage(client, seq, id, expires)
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

// setMailbox stores the header of client's mailbox, deleting it when the mailbox is
// empty: an empty mailbox leaves nothing behind (sequence numbers are store-wide, so
// nothing is lost with it).
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

// dropExpiredHead deletes the messages at the head of a lane of client's mailbox that
// expired at now.
func (b buckets) dropExpiredHead(client []byte, lane store.Priority, now time.Time) error {
	var from uint64
	for {
		// A fresh walk after each delete: a cursor does not survive a delete under it.
		seq, v := b.lane(client, lane).seek(from)
		if v == nil {
			return nil
		}
		id, expires, err := messageMeta(v)
		if err != nil {
			return err
		}
		if !expired(expires, now) {
			return nil
		}
		if err := b.deleteMessage(client, seq, id, expires); err != nil {
			return err
		}
		from = seq + 1
	}
}

// deleteMessage deletes message seq (with id and expiry) from client's mailbox, with its
// index entries (the high lane's included), and counts it out of the mailbox's depth. It
// is the one place a message is deleted: Remove, collapse, Peek and the sweeper all come
// here.
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
	if b.high != nil {
		if err := b.high.Delete(seqKey(client, seq)); err != nil {
			return fmt.Errorf("delete high lane entry: %w", err)
		}
	}
	box, err := b.mailbox(client)
	if err != nil {
		return err
	}
	box.depth = max(box.depth-1, 0)
	return b.setMailbox(client, box)
}
