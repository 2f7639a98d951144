package embedded

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
)

// SetRetained stores r as the retained message of r.Topic, or clears it when r.Data is
// empty, in one transaction, durable when it returns. The change gets the next version of
// the store's retained counter, and r.TTL becomes an expiry on the process clock at that
// transaction. While the disk is full (see the package documentation, Errors) a message
// is refused with an error that wraps store.ErrStoreFull; a clear, which frees space,
// goes ahead.
func (s *Store) SetRetained(ctx context.Context, r store.Retained) (uint64, error) {
	if err := r.Validate(); err != nil {
		return 0, fmt.Errorf("set retained: %w", err)
	}
	if len(r.Data) > 0 {
		if lowDisk := s.reserve.check(); lowDisk != nil {
			return 0, fmt.Errorf("set retained %.64q: store in %q: %w", r.Topic, s.dir, lowDisk)
		}
	}
	var version uint64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		var err error
		version, err = bucketsOf(tx).setRetained(r, time.Now())
		return err
	})
	if err != nil {
		return 0, s.fail("set retained", err)
	}
	return version, nil
}

// setRetained is SetRetained's transaction.
func (b buckets) setRetained(r store.Retained, now time.Time) (uint64, error) {
	version, err := b.nextRetainedVersion(now)
	if err != nil {
		return 0, err
	}
	key := retainedKey(r.Topic)
	if len(r.Data) == 0 {
		if err := b.retained.Delete(key); err != nil {
			return 0, fmt.Errorf("delete retained: %w", err)
		}
		return version, nil
	}
	var expires time.Time
	if r.TTL > 0 {
		expires = now.Add(r.TTL)
	}
	if err := b.retained.Put(key, encodeRetained(r, version, expires)); err != nil {
		return 0, fmt.Errorf("put retained: %w", err)
	}
	return version, nil
}

// nextRetainedVersion gives out the next version of a retained change: one more than the
// last one given (kept in the meta bucket), and at least the process clock in Unix
// microseconds, as nextSeq does for messages.
func (b buckets) nextRetainedVersion(now time.Time) (uint64, error) {
	var last uint64
	if v := b.meta.Get(metaRetainedSeq); v != nil {
		if len(v) != 8 {
			return 0, fmt.Errorf("%w: last retained version holds %d bytes", errCorrupt, len(v))
		}
		last = binary.BigEndian.Uint64(v)
	}
	version := max(last+1, uint64(max(now.UnixMicro(), 0)))
	if err := b.meta.Put(metaRetainedSeq, binary.BigEndian.AppendUint64(nil, version)); err != nil {
		return 0, fmt.Errorf("put retained version: %w", err)
	}
	return version, nil
}

// Retained returns every unexpired retained message, with the TTL it has left on the
// process clock, from one read transaction. The expired ones it met are deleted
// afterwards, in a write transaction that checks each is still expired (a SetRetained
// since may have replaced it); a failure of that tidying is logged, not returned. A
// stored message that cannot be decoded (which no version of this package writes) is
// logged and skipped, so it keeps no caller from the others.
func (s *Store) Retained(ctx context.Context) ([]store.Retained, error) {
	now := time.Now()
	var out []store.Retained
	var dead [][]byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out, dead = nil, nil
		return tx.Bucket(bucketRetained).ForEach(func(k, v []byte) error {
			r, expires, err := decodeRetained(v)
			switch {
			case err != nil:
				s.log.Warn("embedded store: skipping a retained message that cannot be decoded", "dir", s.dir, "err", err)
			case !expires.IsZero() && expired(expires, now):
				dead = append(dead, append([]byte(nil), k...))
			default:
				if !expires.IsZero() {
					r.TTL = expires.Sub(now)
				}
				out = append(out, r)
			}
			return nil
		})
	})
	if err != nil {
		return nil, s.fail("retained", err)
	}
	if len(dead) > 0 {
		err := s.update(ctx, func(tx *bolt.Tx) error { return bucketsOf(tx).dropExpiredRetained(dead, now) })
		if err != nil {
			s.log.Warn("embedded store: delete expired retained messages", "dir", s.dir, "count", len(dead), "err", err)
		}
	}
	return out, nil
}

// dropExpiredRetained deletes the retained messages under keys that expired at now.
func (b buckets) dropExpiredRetained(keys [][]byte, now time.Time) error {
	for _, k := range keys {
		v := b.retained.Get(k)
		if v == nil {
			continue
		}
		if _, expires, err := decodeRetained(v); err != nil || expires.IsZero() || !expired(expires, now) {
			continue
		}
		if err := b.retained.Delete(k); err != nil {
			return fmt.Errorf("delete retained: %w", err)
		}
	}
	return nil
}
