package redisstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

var _ store.Receipts = (*Store)(nil)

// The receipts live under one hash tag, {e}, so that each script below changes them
// atomically (on Redis Cluster they are on one shard, like the retained messages):
//
//	<prefix>:{e}:log    stream: the receipts, fields c (client), i (id), s (status), n
//	                    (node), a (attempts), d (detail); the entry id is the cursor and
//	                    its milliseconds the receipt's time
//	<prefix>:{e}:pend   sorted set: store.MessageKey of each registered message, scored
//	                    by its expiry (Unix ms on Redis's clock)
//	<prefix>:{e}:state  hash: MessageKey -> "<status>,<cursor>" of its terminal receipt
//	                    (the rest of the receipt is its log entry)
//	<prefix>:{e}:cons:<b64 name>  hash: a consumer's cursor, dead count, holder, lease
//
// The one-receipt rule is the state hash: a message with an entry there has ended, and
// no script writes a second receipt for it. A state goes with its log entry: the sweep
// that trims entries from the log deletes their states first (so a state outlives the
// retention as long as the log keeps its entry for a consumer that has not read it).
// Each receipt costs four commands (HEXISTS, ZREM, XADD, HSET) and no encoding in Lua.

func (k keys) receiptKeys() []string {
	return []string{k.prefix + ":{e}:log", k.prefix + ":{e}:pend", k.prefix + ":{e}:state"}
}

func (k keys) consumer(name string) string {
	return k.prefix + ":{e}:cons:" + base64.RawURLEncoding.EncodeToString([]byte(name))
}

const receiptNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// receiptEnd is the Lua function that ends one message: it appends the receipt to the log
// and records the terminal state. KEYS are receiptKeys.
const receiptEnd = `
local function finish(key, c, i, s, n, a, d)
  local id = redis.call('XADD', KEYS[1], '*', 'c', c, 'i', i, 's', s, 'n', n, 'a', a, 'd', d)
  redis.call('HSET', KEYS[3], key, s .. ',' .. id)
  return id
end
`

// registerLua registers messages (ARGV: key, ttl ms, ...) that have not ended yet, each
// with its expiry. KEYS are receiptKeys.
var registerLua = redis.NewScript(receiptNow + `
for i = 1, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 0 then
    redis.call('ZADD', KEYS[2], 'NX', now + tonumber(ARGV[i + 1]), ARGV[i])
  end
end
return 1
`)

// finishLua ends messages (ARGV, seven per receipt: client, id, status, node, attempts,
// detail, only-pending "1"/"0"), each unless it ended already or, only-pending set, is
// not registered. It returns how many it recorded.
var finishLua = redis.NewScript(receiptEnd + `
local n = 0
for i = 1, #ARGV, 7 do
  local key = ARGV[i] .. '\0' .. ARGV[i + 1]
  if redis.call('HEXISTS', KEYS[3], key) == 0 then
    local was = redis.call('ZREM', KEYS[2], key)
    if was == 1 or ARGV[i + 6] ~= '1' then
      finish(key, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
      n = n + 1
    end
  end
end
return n
`)

// sweepLua expires up to ARGV[2] registered messages whose expiry is ARGV[1] ms or more
// ago, then, when ARGV[3] (the retention, ms) is positive, forgets ended states older than
// it and trims the log to it, but not past ARGV[4] (a cursor, or ""), and not at all when
// ARGV[5] is "1". It returns how many
// it expired.
var sweepLua = redis.NewScript(receiptNow + receiptEnd + `
local due = redis.call('ZRANGE', KEYS[2], '-inf', now - tonumber(ARGV[1]), 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
local n = 0
for _, key in ipairs(due) do
  redis.call('ZREM', KEYS[2], key)
  if redis.call('HEXISTS', KEYS[3], key) == 0 then
    local z = string.find(key, '\0', 1, true)
    if z then
      finish(key, string.sub(key, 1, z - 1), string.sub(key, z + 1), 'expired', '', '0',
        'its TTL ran out before it was delivered')
      n = n + 1
    end
  end
end
local ret = tonumber(ARGV[3])
if ret > 0 and ARGV[5] ~= '1' then
  -- Entries older than the retention go, but none after the consumer's cursor.
  local bound = (now - ret + 1) .. '-0'
  local kms, kseq = string.match(ARGV[4], '^(%d+)-(%d+)$')
  if kms then
    local bms = now - ret + 1
    if tonumber(kms) < bms then bound = ARGV[4] end
  end
  -- Their states first, a bounded number per sweep: the trim stops where they stop.
  local old = redis.call('XRANGE', KEYS[1], '-', '(' .. bound, 'COUNT', 10000)
  local drop = {}
  for _, e in ipairs(old) do
    local f, c, i = e[2], nil, nil
    for j = 1, #f, 2 do
      if f[j] == 'c' then c = f[j + 1] elseif f[j] == 'i' then i = f[j + 1] end
    end
    if c and i then
      local key = c .. '\0' .. i
      local st = redis.call('HGET', KEYS[3], key)
      if st and string.sub(st, -#e[1]) == e[1] then drop[#drop + 1] = key end
    end
  end
  for j = 1, #drop, 1000 do
    redis.call('HDEL', KEYS[3], unpack(drop, j, math.min(j + 999, #drop)))
  end
  if #old == 10000 then
    local ms, sq = string.match(old[#old][1], '^(%d+)-(%d+)$')
    bound = ms .. '-' .. (tonumber(sq) + 1)
  end
  if #old > 0 then redis.call('XTRIM', KEYS[1], 'MINID', bound) end
end
return n
`)

// stateLua returns {'s', status, cursor, the log entry's fields (empty if trimmed)},
// {'p', expiry ms, now ms} or {} for ARGV[1].
var stateLua = redis.NewScript(receiptNow + `
local s = redis.call('HGET', KEYS[3], ARGV[1])
if s then
  local st, id = string.match(s, '^([^,]*),(.*)$')
  local e = redis.call('XRANGE', KEYS[1], id, id)
  local f = {}
  if #e > 0 then f = e[1][2] end
  return {'s', st, id, f}
end
local e = redis.call('ZSCORE', KEYS[2], ARGV[1])
if e then return {'p', e, tostring(now)} end
return {}
`)

// claimConsumerLua gives ARGV[1] the consumer's lease for ARGV[2] ms if it is free,
// expired or ARGV[1]'s; 1 when it did.
var claimConsumerLua = redis.NewScript(receiptNow + `
local holder = redis.call('HGET', KEYS[1], 'holder') or ''
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease') or '0')
if holder ~= '' and holder ~= ARGV[1] and lease > now then return 0 end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'lease', now + tonumber(ARGV[2]))
return 1
`)

// setConsumerLua stores the cursor ARGV[2] and dead count ARGV[3] if ARGV[1] holds the
// consumer; 1 when it did.
var setConsumerLua = redis.NewScript(`
if (redis.call('HGET', KEYS[1], 'holder') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'cursor', ARGV[2], 'dead', ARGV[3])
return 1
`)

// maxFinishRun bounds the receipts of one finish script run.
const maxFinishRun = 256

var streamID = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

func checkCursor(op, c string) error {
	if c != "" && !streamID.MatchString(c) {
		return fmt.Errorf("%s: cursor %.64q: %w (want <ms>-<seq>)", op, c, store.ErrBadCursor)
	}
	return nil
}

// register registers the messages with Receipt set, in one script run per few hundred.
func (s *Store) register(ctx context.Context, msgs []store.Message) error {
	var calls []scriptCall
	var args []any
	for _, m := range msgs {
		if !m.Receipt {
			continue
		}
		args = append(args, store.MessageKey(m.To, m.ID), ttlMillis(m.TTL))
		if len(args) == 2*maxFinishRun {
			calls = append(calls, scriptCall{keys: s.keys.receiptKeys(), args: args})
			args = nil
		}
	}
	if len(args) > 0 {
		calls = append(calls, scriptCall{keys: s.keys.receiptKeys(), args: args})
	}
	return s.evalEach(ctx, "register receipts", registerLua, calls, write)
}

// Finish records receipts, in slice order, a few hundred per script run, the runs in one
// pipeline (they share a slot, so they run in order).
func (s *Store) Finish(ctx context.Context, rs ...store.Receipt) error {
	for _, r := range rs {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("finish: %w", err)
		}
	}
	var calls []scriptCall
	for i := 0; i < len(rs); i += maxFinishRun {
		part := rs[i:min(i+maxFinishRun, len(rs))]
		args := make([]any, 0, 7*len(part))
		for _, r := range part {
			only := "0"
			if r.OnlyPending {
				only = "1"
			}
			args = append(args, r.Client, r.ID, string(r.Status), r.Node, strconv.Itoa(r.Attempts), r.Detail, only)
		}
		calls = append(calls, scriptCall{keys: s.keys.receiptKeys(), args: args})
	}
	return s.evalEach(ctx, "finish", finishLua, calls, write)
}

// SweepReceipts expires registered messages past their expiry and the grace, and applies
// the retention, in one script run.
func (s *Store) SweepReceipts(ctx context.Context, o store.SweepOptions) (int, error) {
	if err := checkCursor("sweep receipts", o.Keep); err != nil {
		return 0, err
	}
	n := min(max(o.Max, 0), store.MaxReceiptsRead)
	keepLog := "0"
	if o.KeepLog {
		keepLog = "1"
	}
	cmd, err := s.eval(ctx, write, sweepLua, s.keys.receiptKeys(),
		max(o.Grace.Milliseconds(), 0), n, max(o.Retention.Milliseconds(), 0), o.Keep, keepLog)
	if err != nil {
		return 0, s.fail("sweep receipts", err)
	}
	expired, err := cmd.Int()
	if err != nil {
		return 0, s.fail("sweep receipts", err)
	}
	return expired, nil
}

// ReadReceipts reads the log after a cursor (XREAD), blocking up to wait for a first one.
func (s *Store) ReadReceipts(ctx context.Context, after string, n int, wait time.Duration) ([]store.Receipt, error) {
	if err := checkCursor("read receipts", after); err != nil {
		return nil, err
	}
	n = min(max(n, 0), store.MaxReceiptsRead)
	if n == 0 {
		return nil, nil
	}
	if after == "" {
		after = "0-0"
	}
	block := time.Duration(-1) // go-redis: negative sends no BLOCK, zero would block forever
	if wait > 0 {
		block = max(wait, time.Millisecond)
	}
	streams, err := s.rdb.XRead(ctx, &redis.XReadArgs{
		Streams: []string{s.keys.receiptKeys()[0], after}, Count: int64(n), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail("read receipts", err)
	}
	var out []store.Receipt
	for _, st := range streams {
		for _, m := range st.Messages {
			r, err := receiptOf(m.ID, m.Values)
			if err != nil {
				return nil, fmt.Errorf("read receipts: %w", err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// receiptOf decodes one log entry.
func receiptOf(id string, v map[string]any) (store.Receipt, error) {
	str := func(k string) string { s, _ := v[k].(string); return s }
	r := store.Receipt{
		Cursor: id, Client: str("c"), ID: str("i"), Status: store.ReceiptStatus(str("s")),
		Node: str("n"), Detail: str("d"),
	}
	r.Attempts, _ = strconv.Atoi(str("a"))
	ms, _, ok := cutStreamID(id)
	if !ok || r.Client == "" || r.ID == "" {
		return store.Receipt{}, fmt.Errorf("%w: receipt %q: %v", errCorrupt, id, v)
	}
	r.At = time.UnixMilli(ms)
	return r, nil
}

func cutStreamID(id string) (ms, seq int64, ok bool) {
	a, b, found := strings.Cut(id, "-")
	if !found {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseInt(a, 10, 64)
	seq, err2 := strconv.ParseInt(b, 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}

// ReceiptsTail returns the id of the log's newest entry.
func (s *Store) ReceiptsTail(ctx context.Context) (string, error) {
	msgs, err := s.rdb.XRevRangeN(ctx, s.keys.receiptKeys()[0], "+", "-", 1).Result()
	if err != nil {
		return "", s.fail("receipts tail", err)
	}
	if len(msgs) == 0 {
		return "", nil
	}
	return msgs[0].ID, nil
}

// MessageState reads a message's terminal state, or its registration.
func (s *Store) MessageState(ctx context.Context, client, id string) (store.MessageState, error) {
	vals, err := sliceOf(s.eval(ctx, noWait, stateLua, s.keys.receiptKeys(), store.MessageKey(client, id)))
	if err != nil {
		return store.MessageState{}, s.fail("message state", err)
	}
	st := store.MessageState{Client: client, ID: id}
	kind := ""
	if len(vals) > 0 {
		kind, _ = vals[0].(string)
	}
	switch {
	case kind == "s" && len(vals) == 4:
		status, _ := vals[1].(string)
		cursor, _ := vals[2].(string)
		fields := map[string]any{"c": client, "i": id, "s": status}
		if f, ok := vals[3].([]any); ok {
			for j := 0; j+1 < len(f); j += 2 {
				if k, ok := f[j].(string); ok {
					fields[k] = f[j+1]
				}
			}
		}
		r, err := receiptOf(cursor, fields)
		if err != nil {
			return store.MessageState{}, fmt.Errorf("message state: %w", err)
		}
		st.Receipt = r
	case kind == "p" && len(vals) == 3:
		exp, _ := strconv.ParseFloat(fmt.Sprint(vals[1]), 64)
		now, _ := strconv.ParseFloat(fmt.Sprint(vals[2]), 64)
		st.Pending = true
		st.TTL = max(time.Duration(exp-now)*time.Millisecond, 0)
	default:
		return store.MessageState{}, fmt.Errorf("message %q to %q: %w", id, client, store.ErrNoMessage)
	}
	return st, nil
}

// Consumer reads a consumer's hash.
func (s *Store) Consumer(ctx context.Context, name string) (store.Consumer, error) {
	vals, err := s.rdb.HMGet(ctx, s.keys.consumer(name), "cursor", "dead").Result()
	if err != nil {
		return store.Consumer{}, s.fail("consumer", err)
	}
	var c store.Consumer
	c.Cursor, _ = vals[0].(string)
	if d, ok := vals[1].(string); ok {
		c.Dead, _ = strconv.ParseInt(d, 10, 64)
	}
	return c, nil
}

// SetConsumer stores a consumer's cursor and dead count if holder holds it.
func (s *Store) SetConsumer(ctx context.Context, name, holder string, c store.Consumer) error {
	cmd, err := s.eval(ctx, write, setConsumerLua, []string{s.keys.consumer(name)}, holder, c.Cursor, c.Dead)
	if err != nil {
		return s.fail("set consumer", err)
	}
	ok, err := cmd.Int()
	if err != nil {
		return s.fail("set consumer", err)
	}
	if ok != 1 {
		return fmt.Errorf("set consumer %q: %q does not hold it: %w", name, holder, store.ErrNotOwner)
	}
	return nil
}

// ClaimConsumer gives holder the consumer's lease for ttl.
func (s *Store) ClaimConsumer(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	cmd, err := s.eval(ctx, noWait, claimConsumerLua, []string{s.keys.consumer(name)}, holder, max(ttl.Milliseconds(), 1))
	if err != nil {
		return false, s.fail("claim consumer", err)
	}
	ok, err := cmd.Int()
	if err != nil {
		return false, s.fail("claim consumer", err)
	}
	return ok == 1, nil
}
