package redisstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

var _ store.Schedule = (*Store)(nil)

// The scheduled messages share the hash tag {s}:
//
//	<prefix>:{s}:due  sorted set: store.MessageKey, scored by when it is due (Unix ms on
//	                  Redis's clock), or, once taken, by when its lease ends
//	<prefix>:{s}:msg  hash: MessageKey -> "<expiry ms>,<collapse limit>,<b64 collapse
//	                  key>,<priority>,<encoded message>"
func (k keys) scheduleKeys() []string {
	return []string{k.prefix + ":{s}:due", k.prefix + ":{s}:msg"}
}

// scheduleLua stores messages (ARGV, four each: key, delay ms, TTL ms, the value after its
// expiry) unless their key is scheduled; it returns 1 for each duplicate, else 0.
var scheduleLua = redis.NewScript(receiptNow + `
local out = {}
for i = 1, #ARGV, 4 do
  local key = ARGV[i]
  if redis.call('HEXISTS', KEYS[2], key) == 1 then
    out[#out + 1] = 1
  else
    redis.call('HSET', KEYS[2], key, string.format('%.0f', now + tonumber(ARGV[i + 2])) .. ',' .. ARGV[i + 3])
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[i + 1]), key)
    out[#out + 1] = 0
  end
end
return out
`)

// takeDueLua returns up to ARGV[1] due messages, soonest first, pushing each one's score
// to the end of a lease of ARGV[2] ms, and drops the expired ones it meets. Returns Redis's
// clock (ms), then key and value of each.
var takeDueLua = redis.NewScript(receiptNow + `
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
local out = {now}
for _, key in ipairs(due) do
  local v = redis.call('HGET', KEYS[2], key)
  local exp = v and tonumber(string.match(v, '^(%d+),'))
  if not exp or exp <= now then
    redis.call('ZREM', KEYS[1], key)
    redis.call('HDEL', KEYS[2], key)
  else
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), key)
    out[#out + 1] = key; out[#out + 1] = v
  end
end
return out
`)

var doneScheduledLua = redis.NewScript(`
redis.call('ZREM', KEYS[1], unpack(ARGV))
redis.call('HDEL', KEYS[2], unpack(ARGV))
return 1
`)

// ScheduleMessages stores messages until they are due, registering their receipts first.
func (s *Store) ScheduleMessages(ctx context.Context, msgs []store.Scheduled) ([]bool, error) {
	if err := store.CheckSchedule(msgs); err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return []bool{}, nil
	}
	plain := make([]store.Message, len(msgs))
	for i, m := range msgs {
		plain[i] = m.Message
	}
	if err := s.register(ctx, plain); err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	var calls []scriptCall
	for i := 0; i < len(msgs); i += maxRunMessages {
		var args []any
		for _, m := range msgs[i:min(i+maxRunMessages, len(msgs))] {
			v := strconv.Itoa(m.CollapseLimit) + "," + base64.RawURLEncoding.EncodeToString([]byte(m.CollapseKey)) + "," +
				strconv.Itoa(int(m.Priority)) + "," + string(encodeBody(m.Message))
			args = append(args, store.MessageKey(m.To, m.ID), max(m.Delay.Milliseconds(), 1), ttlMillis(m.TTL), v)
		}
		calls = append(calls, scriptCall{keys: s.keys.scheduleKeys(), args: args})
	}
	cmds, err := s.evalAll(ctx, scheduleLua, calls, write)
	if err != nil {
		return nil, s.fail("schedule", err)
	}
	dup := make([]bool, 0, len(msgs))
	for _, cmd := range cmds {
		vals, err := cmd.Slice()
		if err != nil {
			return nil, s.fail("schedule", err)
		}
		for _, v := range vals {
			n, _ := v.(int64)
			dup = append(dup, n == 1)
		}
	}
	if len(dup) != len(msgs) {
		return nil, fmt.Errorf("schedule: script answered %d outcomes for %d messages", len(dup), len(msgs))
	}
	return dup, nil
}

// TakeDue leases and returns due messages.
func (s *Store) TakeDue(ctx context.Context, n int, lease time.Duration) ([]store.Message, error) {
	n = min(max(n, 0), store.MaxScheduledTake)
	if n == 0 {
		return nil, nil
	}
	vals, err := sliceOf(s.eval(ctx, write, takeDueLua, s.keys.scheduleKeys(), n, max(lease.Milliseconds(), 1)))
	if err != nil {
		return nil, s.fail("take due", err)
	}
	if len(vals) == 0 {
		return nil, fmt.Errorf("take due: script returned no clock")
	}
	now, _ := vals[0].(int64)
	var out []store.Message
	var bad []string
	for i := 1; i+1 < len(vals); i += 2 {
		k, _ := vals[i].(string)
		v, _ := vals[i+1].(string)
		m, err := decodeScheduled(v, now)
		if err != nil {
			// One value no one can read must not hold back the rest, lease after lease.
			s.log.Error("redisstore: a scheduled message that cannot be decoded is dropped", "key", k, "error", err)
			bad = append(bad, k)
			continue
		}
		out = append(out, m)
	}
	if len(bad) > 0 {
		if err := s.DoneScheduled(ctx, bad...); err != nil {
			s.log.Warn("redisstore: drop undecodable scheduled messages", "error", err)
		}
	}
	return out, nil
}

func decodeScheduled(v string, now int64) (store.Message, error) {
	parts := strings.SplitN(v, ",", 5)
	if len(parts) != 5 {
		return store.Message{}, fmt.Errorf("%w: scheduled value %.32q", errCorrupt, v)
	}
	exp, err1 := strconv.ParseInt(parts[0], 10, 64)
	limit, err2 := strconv.Atoi(parts[1])
	key, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	prio, err4 := strconv.ParseUint(parts[3], 10, 8)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return store.Message{}, fmt.Errorf("%w: scheduled value header %.32q", errCorrupt, v)
	}
	// decodeMessage reads the mailbox format: give it a header with no expiry of its own.
	m, err := decodeMessage(codecVersion+",0,0,"+parts[4], 0)
	if err != nil {
		return store.Message{}, err
	}
	m.TTL = time.Duration(exp-now) * time.Millisecond
	m.Seq = 0
	m.CollapseKey, m.CollapseLimit, m.Priority = string(key), limit, store.Priority(prio)
	return m, nil
}

// DoneScheduled forgets scheduled messages.
func (s *Store) DoneScheduled(ctx context.Context, keys ...string) error {
	var calls []scriptCall
	for i := 0; i < len(keys); i += maxRemoveIDs {
		args := make([]any, 0, maxRemoveIDs)
		for _, k := range keys[i:min(i+maxRemoveIDs, len(keys))] {
			args = append(args, k)
		}
		calls = append(calls, scriptCall{keys: s.keys.scheduleKeys(), args: args})
	}
	return s.evalEach(ctx, "done scheduled", doneScheduledLua, calls, noWait)
}

// ScheduledCount counts the scheduled messages.
func (s *Store) ScheduledCount(ctx context.Context) (int, error) {
	n, err := s.rdb.ZCard(ctx, s.keys.scheduleKeys()[0]).Result()
	if err != nil {
		return 0, s.fail("scheduled count", err)
	}
	return int(n), nil
}
