package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts. Each one touches the keys of one client only (or, takeLua, of one
// node; all passed in KEYS, all sharing one hash tag), makes every check before its first
// write (a script has no rollback, and under maxmemory Redis refuses only a script's first
// write that needs memory, so a refused script has written nothing), and is idempotent
// (go-redis may run it twice; see the package documentation).

// connectLua sets the presence and returns the one it replaced. It keeps a copy of the
// replaced presence (p* fields) so that a second run for the same session, a retry,
// returns the presence the first run replaced rather than the first run's own.
//
// KEYS: presence. ARGV: node, epoch, session, since. Returns node, epoch, session, since
// of the replaced presence, empty strings for none.
const connectLua = `
local cur = redis.call('HMGET', KEYS[1], 'node', 'epoch', 'session', 'since',
  'pnode', 'pepoch', 'psession', 'psince')
local prev
if cur[3] == ARGV[3] then
  prev = {cur[5] or '', cur[6] or '', cur[7] or '', cur[8] or ''}
else
  prev = {cur[1] or '', cur[2] or '', cur[3] or '', cur[4] or ''}
end
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'epoch', ARGV[2], 'session', ARGV[3], 'since', ARGV[4],
  'pnode', prev[1], 'pepoch', prev[2], 'psession', prev[3], 'psince', prev[4])
return prev
`

// reassertLua sets the epoch if session owns the presence.
//
// KEYS: presence. ARGV: session, epoch. Returns 1 if it did, 0 if session does not own it.
const reassertLua = `
if redis.call('HGET', KEYS[1], 'session') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'epoch', ARGV[2])
return 1
`

// disconnectLua deletes the presence if session owns it.
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
// KEYS: order, messages, seq, presence. ARGV: limit, grace (ms), then for each message
// its id, TTL (ms) and body. Returns node, epoch, session, since, then for each message
// its status (0 added, 1 duplicate, 2 full), seq (0 when full) and the depth after it.
const appendLua = `
local o, m, sk = KEYS[1], KEYS[2], KEYS[3]
local function int(x) return string.format('%.0f', x) end
local limit, grace = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local micros = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(micros / 1000)
local pres = redis.call('HMGET', KEYS[4], 'node', 'epoch', 'session', 'since')
local depth = redis.call('ZCARD', o)
local last = math.max(tonumber(redis.call('GET', sk) or 0), micros - 1)
local out = {pres[1], pres[2], pres[3], pres[4]}
local added, new, latest = {}, {}, 0
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local seq = new[id]
  if not seq then
    local score = redis.call('ZSCORE', o, id)
    if score then seq = tonumber(score) end
  end
  if seq then
    out[#out + 1] = 1; out[#out + 1] = seq; out[#out + 1] = depth
  elseif depth >= limit then
    out[#out + 1] = 2; out[#out + 1] = 0; out[#out + 1] = depth
  else
    last, depth = last + 1, depth + 1
    local exp = now + tonumber(ARGV[i + 1])
    new[id] = last
    added[#added + 1] = {id, last, exp, ARGV[i + 2]}
    latest = math.max(latest, exp)
    out[#out + 1] = 0; out[#out + 1] = last; out[#out + 1] = depth
  end
end
if #added == 0 then return out end
for _, a in ipairs(added) do
  redis.call('ZADD', o, int(a[2]), a[1])
  redis.call('HSET', m, a[1], '2,' .. int(a[3]) .. ',' .. int(a[2]) .. ',' .. a[4])
end
redis.call('SET', sk, int(last), 'KEEPTTL')
local kexp = latest + grace
for _, k in ipairs({o, m, sk}) do
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
// KEYS: order, messages. ARGV: after, n. Returns Redis's clock (Unix ms), then the
// encoded messages.
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

// removeLua deletes the given ids from one client's mailbox, wherever they are in it;
// ids that are not there are ignored.
//
// KEYS: order, messages. ARGV: ids (at least one). Returns how many it deleted.
const removeLua = `
local n = redis.call('ZREM', KEYS[1], unpack(ARGV))
redis.call('HDEL', KEYS[2], unpack(ARGV))
return n
`

// takeLua pops up to count notices from the head of a node's list and keeps a copy under
// a key named for the call, so a second run of the same call (a go-redis retry after a
// lost reply) returns what the first took instead of taking more and losing those. Its
// first write, LPOP, needs no memory, so under maxmemory Redis never refuses it half-way.
//
// KEYS: notices, taken. ARGV: count, how long to keep the copy (ms). Returns the encoded
// notices.
const takeLua = `
local done = redis.call('LRANGE', KEYS[2], 0, -1)
if #done > 0 then return done end
local got = redis.call('LPOP', KEYS[1], ARGV[1])
if not got then return {} end
redis.call('RPUSH', KEYS[2], unpack(got))
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return got
`

// scripts are a store's loaded scripts; each remembers its SHA1 for EVALSHA.
type scripts struct {
	connect, reassert, disconnect, clear, append, peek, remove, take *redis.Script
}

func newScripts() scripts {
	return scripts{
		connect:    redis.NewScript(connectLua),
		reassert:   redis.NewScript(reassertLua),
		disconnect: redis.NewScript(disconnectLua),
		clear:      redis.NewScript(clearLua),
		append:     redis.NewScript(appendLua),
		peek:       redis.NewScript(peekLua),
		remove:     redis.NewScript(removeLua),
		take:       redis.NewScript(takeLua),
	}
}
