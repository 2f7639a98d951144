package redisstore

import (
	"context"
	"fmt"
	"strconv"

	"github.com/switchboard-mqtt/switchboard/store"
)

// retainedPage is the COUNT of one HSCAN of the retained hash: a hint to Redis, which
// bounds one script run's work and reply.
const retainedPage = 100

// SetRetained stores r as the retained message of r.Topic, or clears it when r.Data is
// empty, in one script that gives the change the next version of the cluster's retained
// counter and turns r.TTL into an expiry on Redis's clock. It is a durable write (see
// Durability). A retry after a lost reply stores the message again under a newer version.
func (s *Store) SetRetained(ctx context.Context, r store.Retained) (uint64, error) {
	if err := r.Validate(); err != nil {
		return 0, fmt.Errorf("set retained: %w", err)
	}
	ttl := int64(0)
	if r.TTL > 0 {
		ttl = ttlMillis(r.TTL)
	}
	cmd, err := s.eval(ctx, write, s.scripts.setRetained, s.keys.retainedKeys(), r.Topic, ttl, r.Data)
	if err == nil {
		err = cmd.Err()
	}
	if err != nil {
		return 0, s.fail("set retained", err)
	}
	str, _ := cmd.Val().(string)
	v, err := strconv.ParseUint(str, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("set retained: script returned version %q", str)
	}
	return v, nil
}

// Retained returns every unexpired retained message, walking the retained hash with
// HSCAN, a page per script run; each run reads Redis's clock, from which the TTL left is
// counted, and deletes the expired messages of its page. A message HSCAN returns twice
// (the hash was resized during the walk) is returned once, in its newest version; one
// set or cleared during the walk may or may not be seen. A stored value that cannot be
// decoded (which no version of this package writes) is logged and skipped.
func (s *Store) Retained(ctx context.Context) ([]store.Retained, error) {
	var out []store.Retained
	at := map[string]int{} // topic -> its index in out
	cursor := "0"
	for {
		vals, err := sliceOf(s.eval(ctx, noWait, s.scripts.scanRetained, []string{s.keys.retained()}, cursor, retainedPage))
		if err != nil {
			return nil, s.fail("retained", err)
		}
		if len(vals) < 2 || len(vals)%2 != 0 {
			return nil, fmt.Errorf("retained: script returned %d values", len(vals))
		}
		cursor, _ = vals[0].(string)
		now, _ := vals[1].(int64)
		for i := 2; i < len(vals); i += 2 {
			topic, _ := vals[i].(string)
			v, _ := vals[i+1].(string)
			r, err := decodeRetained(topic, v, now)
			if err != nil {
				s.log.Warn("redisstore: skipping a retained message that cannot be decoded", "err", err)
				continue
			}
			if j, ok := at[topic]; ok {
				if r.Version > out[j].Version {
					out[j] = r
				}
				continue
			}
			at[topic] = len(out)
			out = append(out, r)
		}
		if cursor == "0" || cursor == "" {
			return out, nil
		}
	}
}
