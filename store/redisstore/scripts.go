package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts. Each one touches the keys of one client only (all passed in KEYS, all
// sharing one hash tag), makes every check before its first write (a script has no
// rollback, and under maxmemory Redis refuses only a script's first write that needs
// memory, so a refused script has written nothing), and is idempotent (go-redis may run it
// twice; see the package documentation).

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

// appendLua adds a message at the tail unless its id is already in the mailbox or the
// mailbox is full, and reads the presence in the same step. It pushes the keys' expiry out
// to the message's, never in.
//
// KEYS: queue, messages, presence. ARGV: id, encoded message, limit, key expiry (Unix ms).
// Returns status (0 added, 1 duplicate, 2 full), depth, node, epoch, session, since.
const appendLua = `
local q, m = KEYS[1], KEYS[2]
local pres = redis.call('HMGET', KEYS[3], 'node', 'epoch', 'session', 'since')
local depth = redis.call('LLEN', q)
local status = 0
if redis.call('HEXISTS', m, ARGV[1]) == 1 then
  status = 1
elseif depth >= tonumber(ARGV[3]) then
  status = 2
else
  redis.call('RPUSH', q, ARGV[1])
  redis.call('HSET', m, ARGV[1], ARGV[2])
  depth = depth + 1
  local exp = tonumber(ARGV[4])
  for _, k in ipairs({q, m}) do
    if redis.call('PEXPIRETIME', k) < exp then redis.call('PEXPIREAT', k, exp) end
  end
end
return {status, depth, pres[1], pres[2], pres[3], pres[4]}
`

// peekLua deletes expired messages at the head, then returns up to n messages from the
// head. It works through the head in chunks so a long run of expired messages costs a few
// commands per hundred. A message whose header it cannot read counts as unexpired; an id
// whose message is missing (which no script leaves behind) counts as expired, so it
// cannot block the head.
//
// KEYS: queue, messages. ARGV: n, now (Unix ms). Returns the encoded messages.
const peekLua = `
local q, m = KEYS[1], KEYS[2]
local now = tonumber(ARGV[2])
while true do
  local ids = redis.call('LRANGE', q, 0, 99)
  if #ids == 0 then return {} end
  local vals = redis.call('HMGET', m, unpack(ids))
  local dead = 0
  for i = 1, #ids do
    local v = vals[i]
    if v then
      local exp = tonumber(string.match(v, '^1,(%-?%d+),'))
      if exp == nil or exp > now then break end
    end
    dead = i
  end
  if dead > 0 then
    redis.call('LPOP', q, dead)
    redis.call('HDEL', m, unpack(ids, 1, dead))
  end
  if dead < #ids then break end
end
local ids = redis.call('LRANGE', q, 0, tonumber(ARGV[1]) - 1)
local vals = redis.call('HMGET', m, unpack(ids))
local out = {}
for i = 1, #ids do
  if vals[i] then out[#out + 1] = vals[i] end
end
return out
`

// ackLua pops each given id that is at the head when its turn comes, if session owns the
// presence; ids not at the head are skipped.
//
// KEYS: presence, queue, messages. ARGV: session, ids... Returns the depth left, or -1 if
// session does not own the presence.
const ackLua = `
if redis.call('HGET', KEYS[1], 'session') ~= ARGV[1] then return -1 end
for i = 2, #ARGV do
  if redis.call('LINDEX', KEYS[2], 0) == ARGV[i] then
    redis.call('LPOP', KEYS[2])
    redis.call('HDEL', KEYS[3], ARGV[i])
  end
end
return redis.call('LLEN', KEYS[2])
`

// scripts are a store's loaded scripts; each remembers its SHA1 for EVALSHA.
type scripts struct {
	connect, reassert, disconnect, clear, append, peek, ack *redis.Script
}

func newScripts() scripts {
	return scripts{
		connect:    redis.NewScript(connectLua),
		reassert:   redis.NewScript(reassertLua),
		disconnect: redis.NewScript(disconnectLua),
		clear:      redis.NewScript(clearLua),
		append:     redis.NewScript(appendLua),
		peek:       redis.NewScript(peekLua),
		ack:        redis.NewScript(ackLua),
	}
}
