package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/internal/codec"
)

var _ store.Schedule = (*Store)(nil)

// The scheduled messages, in buckets created by the first schedule:
//
//	sched   store.MessageKey -> the due time (Unix ns, 8 bytes), then the collapse limit
//	        (uvarint), the collapse key, the priority (a byte) and the message as the
//	        mailbox encodes it (with its expiry)
//	schedx  due time (8 bytes) + MessageKey -> nothing: sched by due time; a taken
//	        message is moved to the end of its lease
var (
	bucketSched  = []byte("sched")
	bucketSchedX = []byte("schedx")
)

func encodeScheduled(due time.Time, m store.Message, expires time.Time) []byte {
	b := binary.BigEndian.AppendUint64(nil, orderedInt(unixNanos(due)))
	b = binary.AppendUvarint(b, uint64(m.CollapseLimit))
	b = codec.AppendString(b, m.CollapseKey)
	b = append(b, byte(m.Priority))
	return append(b, encodeMessage(m, expires)...)
}

func decodeScheduled(v []byte) (due int64, m store.Message, expires time.Time, err error) {
	if len(v) < 8 {
		return 0, m, expires, fmt.Errorf("%w: scheduled entry of %d bytes", errCorrupt, len(v))
	}
	due = readOrderedInt(v)
	d := codec.NewDecoder(v[8:])
	limit := d.Uvarint()
	key := d.Str()
	prio := d.Byte()
	rest := d.Rest()
	if err := d.Done(); err != nil {
		return 0, m, expires, fmt.Errorf("decode scheduled: %w", err)
	}
	if m, expires, err = decodeMessage(rest); err != nil {
		return 0, m, expires, err
	}
	m.CollapseKey, m.CollapseLimit, m.Priority = key, int(limit), store.Priority(prio)
	return due, m, expires, nil
}

// ScheduleMessages stores messages until they are due, in one transaction that also
// registers their receipts.
func (s *Store) ScheduleMessages(ctx context.Context, msgs []store.Scheduled) ([]bool, error) {
	if err := store.CheckSchedule(msgs); err != nil {
		return nil, err
	}
	dup := make([]bool, len(msgs))
	err := s.update(ctx, func(tx *bolt.Tx) error {
		now := time.Now()
		plain := make([]store.Message, len(msgs))
		for i, m := range msgs {
			plain[i] = m.Message
		}
		if err := registerReceipts(tx, plain, now); err != nil {
			return err
		}
		sb, err := tx.CreateBucketIfNotExists(bucketSched)
		if err != nil {
			return err
		}
		xb, err := tx.CreateBucketIfNotExists(bucketSchedX)
		if err != nil {
			return err
		}
		for i, m := range msgs {
			key := []byte(store.MessageKey(m.To, m.ID))
			if dup[i] = sb.Get(key) != nil; dup[i] {
				continue
			}
			due := now.Add(m.Delay)
			if err := sb.Put(key, encodeScheduled(due, m.Message, now.Add(m.TTL))); err != nil {
				return err
			}
			if err := xb.Put(nanoKey(unixNanos(due), string(key)), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.fail("schedule", err)
	}
	return dup, nil
}

// TakeDue leases and returns due messages, dropping the expired ones it meets.
func (s *Store) TakeDue(ctx context.Context, n int, lease time.Duration) ([]store.Message, error) {
	n = min(max(n, 0), store.MaxScheduledTake)
	if n == 0 {
		return nil, nil
	}
	var out []store.Message
	err := s.update(ctx, func(tx *bolt.Tx) error {
		out = nil
		sb, xb := tx.Bucket(bucketSched), tx.Bucket(bucketSchedX)
		if sb == nil || xb == nil {
			return nil
		}
		now := time.Now()
		type item struct{ idx, key []byte }
		var due []item
		c := xb.Cursor()
		for k, _ := c.First(); k != nil && len(due) < n; k, _ = c.Next() {
			if len(k) < 8 || readOrderedInt(k) > unixNanos(now) {
				break
			}
			due = append(due, item{bytes.Clone(k), bytes.Clone(k[8:])})
		}
		for _, it := range due {
			if err := xb.Delete(it.idx); err != nil {
				return err
			}
			v := sb.Get(it.key)
			if v == nil {
				continue
			}
			_, m, expires, err := decodeScheduled(v)
			if err != nil {
				// One value no one can read must not hold back the rest for good.
				s.log.Error("embedded store: a scheduled message that cannot be decoded is dropped", "key", string(it.key), "error", err)
				if err := sb.Delete(it.key); err != nil {
					return err
				}
				continue
			}
			if !now.Before(expires) {
				if err := sb.Delete(it.key); err != nil {
					return err
				}
				continue
			}
			next := now.Add(lease)
			if err := sb.Put(it.key, encodeScheduled(next, m, expires)); err != nil {
				return err
			}
			if err := xb.Put(nanoKey(unixNanos(next), string(it.key)), nil); err != nil {
				return err
			}
			m.TTL = expires.Sub(now)
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, s.fail("take due", err)
	}
	return out, nil
}

// DoneScheduled forgets scheduled messages.
func (s *Store) DoneScheduled(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		sb, xb := tx.Bucket(bucketSched), tx.Bucket(bucketSchedX)
		if sb == nil || xb == nil {
			return nil
		}
		for _, k := range keys {
			v := sb.Get([]byte(k))
			if v == nil {
				continue
			}
			if len(v) >= 8 {
				if err := xb.Delete(nanoKey(readOrderedInt(v), k)); err != nil {
					return err
				}
			}
			if err := sb.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	return s.fail("done scheduled", err)
}

// ScheduledCount counts the scheduled messages.
func (s *Store) ScheduledCount(ctx context.Context) (int, error) {
	n := 0
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketSched); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		return 0, s.fail("scheduled count", err)
	}
	return n, nil
}
