package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts. Each one touches the keys of one client only (or, for the notice
// scripts, of one node; all passed in KEYS, all sharing one hash tag), makes every check
// before its first write (a script has no rollback, and under maxmemory Redis refuses only
// a script's first write that needs memory, so a refused script has written nothing), and
// is idempotent (go-redis may run it twice; see the package documentation).

// connectLua sets the presence and returns the one it replaced and the pending
// takeovers it carried over. When the replaced presence is online on another node, it is
// recorded as a pending takeover at the tail of the takeovers list (unless its session is
// there already); when the list held more than max pending takeovers, the oldest are
// dropped first. It keeps a copy of the replaced presence (p* fields) and the number of
// pending takeovers it returned (pn, the head of the list it left), so that a second run
// for the same session, a retry, returns what the first run returned (less what a
// ConfirmTakeover cleared since) rather than the first run's own presence, and records
// nothing more in the list. pt is the length of the list it left (in takeovers): what
// this session's ConfirmTakeover may clear.
//
// KEYS: presence, takeovers. ARGV: node, epoch, session, since, max pending. Returns
// node, epoch, session, since of the replaced presence (empty strings for none), how many
// pending takeovers it dropped, then node, epoch, session, since of each pending
// takeover it carried over, oldest first.
const connectLua = `
local p, t = KEYS[1], KEYS[2]
local cur = redis.call('HMGET', p, 'node', 'epoch', 'session', 'since',
  'pnode', 'pepoch', 'psession', 'psince', 'pn')
local list = redis.call('LRANGE', t, 0, -1)
local total = math.floor(#list / 4)
if cur[3] == ARGV[3] then
  local n = math.min(tonumber(cur[9]) or 0, total)
  local out = {cur[5] or '', cur[6] or '', cur[7] or '', cur[8] or '', 0}
  for i = 1, 4 * n do out[#out + 1] = list[i] end
  redis.call('HSET', p, 'node', ARGV[1], 'epoch', ARGV[2], 'since', ARGV[4])
  return out
end
local prev = {cur[1] or '', cur[2] or '', cur[3] or '', cur[4] or ''}
local drop = math.max(total - tonumber(ARGV[5]), 0)
local add = prev[1] ~= '' and prev[1] ~= ARGV[1]
local out = {prev[1], prev[2], prev[3], prev[4], drop}
for i = 4 * drop + 1, 4 * total, 4 do
  if list[i + 2] == prev[3] then add = false end
  for j = i, i + 3 do out[#out + 1] = list[j] end
end
local kept = total - drop
redis.call('HSET', p, 'node', ARGV[1], 'epoch', ARGV[2], 'session', ARGV[3], 'since', ARGV[4],
  'pnode', prev[1], 'pepoch', prev[2], 'psession', prev[3], 'psince', prev[4],
  'pn', kept, 'pt', add and kept + 1 or kept)
if drop > 0 then redis.call('LTRIM', t, 4 * drop, -1) end
if add then redis.call('RPUSH', t, prev[1], prev[2], prev[3], prev[4]) end
return out
`

// confirmLua clears the pending takeovers session's Connect left (pt of them, the whole
// list unless the presence was recorded again by Reassert, which knows of none) if
// session owns the presence, and sets pt to zero, so a second run clears nothing more.
// Its first write, LTRIM, needs no memory.
//
// KEYS: presence, takeovers. ARGV: session. Returns 1 if session owns the presence, 0 if
// it does not.
const confirmLua = `
local cur = redis.call('HMGET', KEYS[1], 'session', 'pt')
if cur[1] ~= ARGV[1] then return 0 end
local n = tonumber(cur[2]) or 0
if n > 0 then
  redis.call('LTRIM', KEYS[2], 4 * n, -1)
  redis.call('HSET', KEYS[1], 'pt', 0)
end
return 1
`

// reassertLua sets the epoch and node if session owns the presence, or records the
// presence if there is none and session is not among the pending takeovers.
//
// KEYS: presence, takeovers. ARGV: node, epoch, session, since. Returns 1 and the node
// the presence named if session owned it, 2 and an empty string if it recorded a new
// presence, 0 and an empty string if session may not own it.
const reassertLua = `
local cur = redis.call('HMGET', KEYS[1], 'node', 'session')
if cur[1] and cur[1] ~= '' then
  if cur[2] ~= ARGV[3] then return {0, ''} end
  redis.call('HSET', KEYS[1], 'node', ARGV[1], 'epoch', ARGV[2])
  return {1, cur[1]}
end
local list = redis.call('LRANGE', KEYS[2], 0, -1)
for i = 3, #list, 4 do
  if list[i] == ARGV[3] then return {0, ''} end
end
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'epoch', ARGV[2], 'session', ARGV[3], 'since', ARGV[4])
return {2, ''}
`

// disconnectLua deletes the presence if session owns it. The pending takeovers, in their
// own key, stay.
//
// KEYS: presence. ARGV: session. Returns the node the presence named, or nil if session
// did not own it.
const disconnectLua = `
local cur = redis.call('HMGET', KEYS[1], 'session', 'node')
if cur[1] ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
return cur[2]
`

// clearLua deletes the presence if it names node at epoch: the reaper's compare-and-delete.
// The pending takeovers, in their own key, stay.
//
// KEYS: presence. ARGV: node, epoch. Returns 1 if it deleted, 2 if the presence names node
// at another epoch (the client is still on the node), 0 if it names another node or none.
const clearLua = `
local cur = redis.call('HMGET', KEYS[1], 'node', 'epoch')
if cur[1] ~= ARGV[1] then return 0 end
if cur[2] ~= ARGV[2] then return 2 end
redis.call('DEL', KEYS[1])
return 1
`

// The mailbox scripts read Redis's clock with TIME, so expiry is judged on one clock, the
// store's. Redis 7 replicates a script's effects, not the script, so a replica or the
// append-only file replays the writes the script made, not its call to TIME.
//
// Lua numbers are doubles: a sequence number (about 1.8e15 today, Unix microseconds) is
// exact below 2^53 (about 9e15, the year 2255), but Lua's tostring prints only 14 digits,
// so the scripts format numbers with int() before they put them in a string.

// appendLua adds messages at the tail of one client's mailbox, each unless its id is
// already there (duplicate) or the mailbox is full, and reads the presence in the same
// step. It decides every message's outcome before its first write.
//
// A new message's sequence number is one more than the last one given, and at least
// Redis's clock in microseconds, so numbers keep growing even after the counter key
// expired with the rest of an abandoned mailbox (a client would need a million appends a
// second for the counter to run ahead of the clock). The message's expiry is Redis's
// clock in milliseconds plus its TTL; the keys' expiry is pushed out to the latest
// message's plus the grace, never in.
//
// One Append's messages for one client can take several runs (see maxRunMessages), all in
// one pipeline; a run Redis did not take at once (TRYAGAIN during a slot migration, then
// NOSCRIPT or ASK on the slot's new node) is sent again while a later run may already have
// been taken, which would put the later messages first. So the runs of one Append are
// chained: each names the mark the run before it leaves in the client's chain key and
// leaves its own, and a run whose predecessor has not run is refused with ORDER, before
// any write, to be sent again after it. A lone run has no marks and writes no chain key.
//
// A message with a collapse key replaces the queued message that came last with the same
// key (the collapse hash maps each key to that message's id; an entry whose message left
// the mailbox is stale, counts for nothing, and is deleted when met): the old one is
// deleted, the new one goes at the tail, and the depth stays. A new key past the
// message's limit of keys (0: none) refuses the message (status 3).
//
// The mailbox has two lanes, order and high (store.Priorities), sharing the messages
// hash and the counter. A message goes in the lane its priority names; everything else
// looks at both: a duplicate id is one queued in either, the depth the limit is checked
// against is both sets' size, a collapse key's message may be in either (and is deleted
// from whichever holds it), and both sets' expiry is pushed out with the others'.
//
// A run whose messages are all duplicates or refused writes nothing, but one that answers
// a duplicate (as stored) while a wait for durability follows writes the counter again,
// unchanged, for that wait (see the script).
//
// KEYS: order, messages, seq, presence, chain, collapse, high. ARGV: limit, grace (ms),
// the mark of the run before (empty for none), this run's mark (empty for none), "1" when a
// WAIT or WAITAOF follows the run ("0" otherwise), then for
// each message its id, TTL (ms), body, collapse key (empty for none), limit of keys and
// lane ("1" for the high lane, "0" for the normal one).
// Returns node, epoch, session, since, then for each message its status (0 added, 1
// duplicate, 2 full, 3 too many collapse keys), seq (0 when not added), the depth after
// it and the id of the message it replaced (empty for none).
const appendLua = `
local o, m, sk, ck, oh = KEYS[1], KEYS[2], KEYS[3], KEYS[6], KEYS[7]
local function int(x) return string.format('%.0f', x) end
local limit, grace = tonumber(ARGV[1]), tonumber(ARGV[2])
local prev, mark, waits = ARGV[3], ARGV[4], ARGV[5] == '1'
if prev ~= '' and redis.call('GET', KEYS[5]) ~= prev then
  return redis.error_reply('ORDER an earlier run of this append is not stored yet')
end
local t = redis.call('TIME')
local micros = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(micros / 1000)
local pres = redis.call('HMGET', KEYS[4], 'node', 'epoch', 'session', 'since')
local depth = redis.call('ZCARD', o) + redis.call('ZCARD', oh)
local last = math.max(tonumber(redis.call('GET', sk) or 0), micros - 1)
local out = {pres[1], pres[2], pres[3], pres[4]}
-- queued is the message's sequence number in either lane, or false.
local function queued(id) return redis.call('ZSCORE', o, id) or redis.call('ZSCORE', oh, id) end
local added, new, latest, dup = {}, {}, 0, false
local ckeys, nkeys, stale, ksets, removals, gone = nil, 0, {}, {}, {}, {}
-- A key's entry is "<seq>,<id>": live only while that very message is queued (an id sent
-- again after its first message left is another message, which the key does not name).
local function loadKeys()
  if ckeys then return end
  ckeys = {}
  local all = redis.call('HGETALL', ck)
  for j = 1, #all, 2 do
    local s, cid = string.match(all[j + 1], '^(%d+),(.*)$')
    local q = cid and queued(cid)
    if q and tonumber(q) == tonumber(s) then
      ckeys[all[j]] = cid; nkeys = nkeys + 1
    else
      stale[all[j]] = true
    end
  end
end
for i = 6, #ARGV, 6 do
  local id, key, klimit = ARGV[i], ARGV[i + 3], tonumber(ARGV[i + 4])
  local seq = new[id]
  if not seq and not gone[id] then -- one replaced in this run is not queued any more
    local score = queued(id)
    if score then seq = tonumber(score) end
  end
  local old = nil
  if not seq and key ~= '' then
    loadKeys()
    old = ckeys[key]
    if old == id then old = nil end
  end
  local d = depth
  if old then d = d - 1 end
  if seq then
    dup = true
    out[#out + 1] = 1; out[#out + 1] = seq; out[#out + 1] = depth; out[#out + 1] = ''
  elseif key ~= '' and not old and klimit > 0 and nkeys >= klimit then
    out[#out + 1] = 3; out[#out + 1] = 0; out[#out + 1] = depth; out[#out + 1] = ''
  elseif d >= limit then
    out[#out + 1] = 2; out[#out + 1] = 0; out[#out + 1] = depth; out[#out + 1] = ''
  else
    if old then
      if new[old] then
        for _, a in ipairs(added) do if a[1] == old then a[5] = true end end
        new[old] = nil
      else
        removals[#removals + 1] = old
      end
      gone[old] = true
      depth = depth - 1
    end
    last, depth = last + 1, depth + 1
    local exp = now + tonumber(ARGV[i + 1])
    new[id] = last
    added[#added + 1] = {id, last, exp, ARGV[i + 2], false, ARGV[i + 5] == '1'}
    latest = math.max(latest, exp)
    if key ~= '' then
      if not ckeys[key] then nkeys = nkeys + 1 end
      ckeys[key] = id; ksets[key] = int(last) .. ',' .. id; stale[key] = nil
    end
    out[#out + 1] = 0; out[#out + 1] = last; out[#out + 1] = depth; out[#out + 1] = old or ''
  end
end
if mark ~= '' then redis.call('SET', KEYS[5], mark, 'PX', 60000) end
for k in pairs(stale) do redis.call('HDEL', ck, k) end
if #added == 0 then
  -- A duplicate is answered as stored, though this run writes nothing, and Redis counts
  -- only a connection's own writes for the WAIT or WAITAOF sent after it: writing the
  -- counter again (the same value) makes that wait cover the first copy's write too. A
  -- store that refuses the write (out of memory, a failed AOF write, too few replicas)
  -- fails the run: nothing then says the first copy is as durable as asked.
  if dup and waits and redis.call('EXISTS', sk) == 1 then redis.call('SET', sk, redis.call('GET', sk), 'KEEPTTL') end
  return out
end
if #removals > 0 then
  redis.call('ZREM', o, unpack(removals))
  redis.call('ZREM', oh, unpack(removals))
  redis.call('HDEL', m, unpack(removals))
end
for _, a in ipairs(added) do
  if not a[5] then
    redis.call('ZADD', a[6] and oh or o, int(a[2]), a[1])
    redis.call('HSET', m, a[1], '2,' .. int(a[3]) .. ',' .. int(a[2]) .. ',' .. a[4])
  end
end
local kn = 0
for k, v in pairs(ksets) do redis.call('HSET', ck, k, v); kn = kn + 1 end
redis.call('SET', sk, int(last), 'KEEPTTL')
local kexp = latest + grace
-- A lane that does not exist is left alone: PEXPIREAT of a missing key does nothing.
local expiring = {o, oh, m, sk}
if kn > 0 then expiring[5] = ck end
for _, k in ipairs(expiring) do
  if redis.call('PEXPIRETIME', k) < kexp then redis.call('PEXPIREAT', k, int(kexp)) end
end
return out
`

// peekLua returns up to n unexpired messages with a sequence number above after, oldest
// first. On its way it deletes the expired messages at the head (a hundred at a time, so
// a long run of them costs a few commands per hundred) and every expired message it
// reads past. Its only writes are those deletes, which are right at any point, so it may
// interleave them with its reads and still be safe to run twice. A message whose header
// it cannot read counts as unexpired; an id whose message is missing (which no script
// leaves behind) counts as expired, so it cannot block the head.
//
// It reads one lane: KEYS[1] is the order set for Peek, the high set for PeekHigh.
//
// KEYS: order (or high), messages. ARGV: after, n. Returns Redis's clock (Unix ms), then
// the encoded messages.
const peekLua = `
local o, m = KEYS[1], KEYS[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function expired(v)
  if not v then return true end
  local exp = tonumber(string.match(v, '^2,(%d+),'))
  return exp ~= nil and exp <= now
end
local function drop(ids)
  if #ids == 0 then return end
  redis.call('ZREM', o, unpack(ids))
  redis.call('HDEL', m, unpack(ids))
end
while true do
  local ids = redis.call('ZRANGE', o, 0, 99)
  if #ids == 0 then break end
  local vals = redis.call('HMGET', m, unpack(ids))
  local dead = {}
  for i = 1, #ids do
    if not expired(vals[i]) then break end
    dead[i] = ids[i]
  end
  drop(dead)
  if #dead < #ids then break end
end
local n = tonumber(ARGV[2])
local out = {now}
local from = '(' .. ARGV[1]
while #out - 1 < n do
  local want = n - (#out - 1)
  local r = redis.call('ZRANGE', o, from, '+inf', 'BYSCORE', 'LIMIT', 0, want, 'WITHSCORES')
  if #r == 0 then break end
  local ids = {}
  for i = 1, #r, 2 do ids[#ids + 1] = r[i] end
  local vals = redis.call('HMGET', m, unpack(ids))
  local dead = {}
  for i = 1, #ids do
    if expired(vals[i]) then dead[#dead + 1] = ids[i] else out[#out + 1] = vals[i] end
  end
  drop(dead)
  if #ids < want then break end
  from = '(' .. r[#r]
end
return out
`

// removeLua deletes the given ids from one client's mailbox, wherever they are in it, in
// either lane; ids that are not there are ignored.
//
// KEYS: order, messages, high. ARGV: ids (at least one). Returns how many it deleted.
const removeLua = `
local n = redis.call('ZREM', KEYS[1], unpack(ARGV)) + redis.call('ZREM', KEYS[3], unpack(ARGV))
redis.call('HDEL', KEYS[2], unpack(ARGV))
return n
`

// notifyLua appends notices at the tail of a node's list, each as "<seq>,<encoded
// notice>", and pushes the expiry of the list and of its counter to keep from now. A
// notice's sequence number is one more than the last one given, and at least Redis's
// clock in microseconds, so numbers keep growing even after both keys expired (as for a
// mailbox). Its only check is reading the counter; its first write, RPUSH, is the one
// that needs memory. A second run appends the notices again under new numbers (the
// contract allows it: a notice may be acted on twice).
//
// KEYS: notices, counter. ARGV: keep (ms), then the encoded notices (at least one).
// Returns the last sequence number given.
const notifyLua = `
local function int(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local micros = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = math.max(tonumber(redis.call('GET', KEYS[2]) or 0), micros - 1)
local vals = {}
for i = 2, #ARGV do
  last = last + 1
  vals[#vals + 1] = int(last) .. ',' .. ARGV[i]
end
for i = 1, #vals, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(vals, i, math.min(i + 999, #vals)))
end
redis.call('SET', KEYS[2], int(last), 'PX', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return int(last)
`

// doneLua removes the notices at the head of a node's list whose sequence number is upTo
// or less: it counts them first, a hundred at a time, then trims them in one LTRIM, which
// needs no memory. An entry whose number it cannot read (which no script writes) counts
// as confirmed, so it cannot block the head. A second run finds nothing more to remove:
// every notice left has a greater number.
//
// KEYS: notices. ARGV: upTo. Returns how many it removed.
const doneLua = `
local upTo = tonumber(ARGV[1])
local n = 0
while true do
  local head = redis.call('LRANGE', KEYS[1], n, n + 99)
  local k = 0
  for i = 1, #head do
    local seq = tonumber(string.match(head[i], '^(%d+),'))
    if seq and seq > upTo then break end
    k = i
  end
  n = n + k
  if k < 100 then break end
end
if n > 0 then redis.call('LTRIM', KEYS[1], n, -1) end
return n
`

// The retained scripts change the cluster's one retained hash and its counter, which share
// the hash tag {r}. A retained message is stored as "1,<expiry: Unix ms on Redis's clock,
// 0 for none>,<version>," then the caller's data.

// setRetainedLua stores a topic's retained message, or deletes it when the data is empty,
// under the next version: one more than the counter, and at least Redis's clock in
// microseconds (as a message's sequence number), so versions keep growing even if the
// counter was lost. A clear takes a version too. Its first write is the one that needs
// memory (HSET), or needs none (HDEL). A second run stores the same message again under a
// new version.
//
// KEYS: retained, counter. ARGV: topic, TTL (ms, 0 for none), data (empty to clear).
// Returns the version given.
const setRetainedLua = `
local function int(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local micros = tonumber(t[1]) * 1000000 + tonumber(t[2])
local v = math.max(tonumber(redis.call('GET', KEYS[2]) or 0), micros - 1) + 1
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  local ttl, exp = tonumber(ARGV[2]), 0
  if ttl > 0 then exp = math.floor(micros / 1000) + ttl end
  redis.call('HSET', KEYS[1], ARGV[1], '1,' .. int(exp) .. ',' .. int(v) .. ',' .. ARGV[3])
end
redis.call('SET', KEYS[2], int(v))
return int(v)
`

// scanRetainedLua reads one HSCAN page of the retained hash and deletes the messages in it
// whose expiry passed; its only writes are those deletes, which are right at any point. A
// value whose header it cannot read counts as unexpired.
//
// KEYS: retained. ARGV: cursor, count. Returns the next cursor ("0" at the end), Redis's
// clock (Unix ms), then topic and value of each unexpired message of the page.
const scanRetainedLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local out, dead, kv = {r[1], now}, {}, r[2]
for i = 1, #kv, 2 do
  local exp = tonumber(string.match(kv[i + 1], '^1,(%d+),'))
  if exp and exp > 0 and exp <= now then
    dead[#dead + 1] = kv[i]
  else
    out[#out + 1] = kv[i]; out[#out + 1] = kv[i + 1]
  end
end
if #dead > 0 then redis.call('HDEL', KEYS[1], unpack(dead)) end
return out
`

// scripts are a store's loaded scripts; each remembers its SHA1 for EVALSHA.
type scripts struct {
	connect, confirm, reassert, disconnect, clear, append, peek, remove, notify, done *redis.Script
	setRetained, scanRetained                                                         *redis.Script
}

// all lists the scripts, for loading them at start.
func (s scripts) all() []*redis.Script {
	return []*redis.Script{s.connect, s.confirm, s.reassert, s.disconnect, s.clear, s.append, s.peek, s.remove, s.notify, s.done,
		s.setRetained, s.scanRetained}
}

func newScripts() scripts {
	return scripts{
		connect:    redis.NewScript(connectLua),
		confirm:    redis.NewScript(confirmLua),
		reassert:   redis.NewScript(reassertLua),
		disconnect: redis.NewScript(disconnectLua),
		clear:      redis.NewScript(clearLua),
		append:     redis.NewScript(appendLua),
		peek:       redis.NewScript(peekLua),
		remove:     redis.NewScript(removeLua),
		notify:     redis.NewScript(notifyLua),
		done:       redis.NewScript(doneLua),

		setRetained:  redis.NewScript(setRetainedLua),
		scanRetained: redis.NewScript(scanRetainedLua),
	}
}
