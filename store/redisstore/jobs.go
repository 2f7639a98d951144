package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

var _ store.Jobs = (*Store)(nil)

// A job is one hash (keys.job) with the fields of store.Job: group, spec, state, cursor,
// total, the five counts, error, created, updated and ended (Unix milliseconds on the
// routers' clocks), owner, lease (the lease's end in Unix milliseconds on Redis's clock) and
// claims. Running jobs are also indexed in keys.runningJobs, which ClaimJob walks; the
// index is a hint (an ended job left in it is dropped when met), the hash the truth.

// createJobLua stores the job's fields (ARGV: field, value, ...) unless the hash exists;
// 1 when it did.
var createJobLua = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`)

// claimJobLua gives ARGV[1] the lease for ARGV[2] ms if the job runs and its lease is
// free, expired or ARGV[1]'s own.
var claimJobLua = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 'ended' end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease') or '0')
if owner ~= ARGV[1] and owner ~= '' and lease > now then return 'held' end
if owner ~= ARGV[1] then redis.call('HINCRBY', KEYS[1], 'claims', 1) end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'lease', now + tonumber(ARGV[2]))
return 'ok'
`)

// advanceJobLua records progress if ARGV[1] owns the running job. ARGV: owner, lease ms,
// cursor, state, error, at, delivered, queued, duplicates, expired, failed, retention ms,
// renew ("1": only the lease).
var advanceJobLua = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[13] == '1' then
  redis.call('HSET', KEYS[1], 'lease', now + tonumber(ARGV[2]))
  return 1
end
redis.call('HSET', KEYS[1], 'cursor', ARGV[3], 'updated', ARGV[6], 'lease', now + tonumber(ARGV[2]))
local names = {'delivered', 'queued', 'duplicates', 'expired', 'failed'}
for i, f in ipairs(names) do
  local d = tonumber(ARGV[6 + i])
  if d ~= 0 then redis.call('HINCRBY', KEYS[1], f, d) end
end
if ARGV[4] ~= 'running' then
  redis.call('HSET', KEYS[1], 'state', ARGV[4], 'error', ARGV[5], 'ended', ARGV[6], 'owner', '', 'lease', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[12])
end
return 1
`)

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// CreateJob stores the job's hash and indexes it as running.
func (s *Store) CreateJob(ctx context.Context, j store.Job) (store.Job, bool, error) {
	if err := store.CheckJob(j); err != nil {
		return store.Job{}, false, fmt.Errorf("create job: %w", err)
	}
	key := s.keys.job(j.ID)
	cmd, err := s.eval(ctx, write, createJobLua, []string{key},
		"group", j.Group, "spec", j.Spec, "state", string(store.JobRunning), "cursor", "",
		"total", j.Total, "created", unixMilli(j.Created), "updated", unixMilli(j.Created))
	if err != nil {
		return store.Job{}, false, s.fail("create job", err)
	}
	created, err := cmd.Int()
	if err != nil {
		return store.Job{}, false, s.fail("create job", err)
	}
	got, err := s.Job(ctx, j.ID)
	if err != nil {
		return store.Job{}, false, err
	}
	if got.State == store.JobRunning {
		// Also after a create whose answer was lost: the index must name every running job.
		if err := s.rdb.ZAddNX(ctx, s.keys.runningJobs(), redis.Z{Score: float64(unixMilli(j.Created)), Member: j.ID}).Err(); err != nil {
			return store.Job{}, false, s.fail("create job: index", err)
		}
	}
	return got, created == 1, nil
}

// Job reads the job's hash.
func (s *Store) Job(ctx context.Context, id string) (store.Job, error) {
	h, err := s.rdb.HGetAll(ctx, s.keys.job(id)).Result()
	if err != nil {
		return store.Job{}, s.fail("job", err)
	}
	if len(h) == 0 {
		return store.Job{}, fmt.Errorf("job %q: %w", id, store.ErrNoJob)
	}
	j := store.Job{ID: id, Group: h["group"], Spec: []byte(h["spec"]), State: store.JobState(h["state"]),
		Cursor: h["cursor"], Error: h["error"], Owner: h["owner"]}
	var ints [9]int64
	for i, f := range []string{"total", "delivered", "queued", "duplicates", "expired", "failed", "created", "updated", "ended"} {
		if ints[i], err = atoi(h[f]); err != nil {
			return store.Job{}, fmt.Errorf("job %q: field %s: %w", id, f, err)
		}
	}
	claims, err := atoi(h["claims"])
	if err != nil {
		return store.Job{}, fmt.Errorf("job %q: field claims: %w", id, err)
	}
	j.Total = int(ints[0])
	j.Counts = store.JobCounts{Delivered: int(ints[1]), Queued: int(ints[2]), Duplicates: int(ints[3]), Expired: int(ints[4]), Failed: int(ints[5])}
	j.Created, j.Updated, j.Ended = fromMilli(ints[6]), fromMilli(ints[7]), fromMilli(ints[8])
	j.Claims = int(claims)
	return j, nil
}

// maxClaimScan bounds the running jobs one ClaimJob examines.
const maxClaimScan = 100

// ClaimJob walks the running index, oldest first, and tries each job's claim script.
func (s *Store) ClaimJob(ctx context.Context, owner string, lease time.Duration) (store.Job, bool, error) {
	if owner == "" || lease <= 0 {
		return store.Job{}, false, fmt.Errorf("claim job: owner %q and lease %v must be set", owner, lease)
	}
	ids, err := s.rdb.ZRange(ctx, s.keys.runningJobs(), 0, maxClaimScan-1).Result()
	if err != nil {
		return store.Job{}, false, s.fail("claim job", err)
	}
	for _, id := range ids {
		cmd, err := s.eval(ctx, write, claimJobLua, []string{s.keys.job(id)}, owner, lease.Milliseconds())
		if err != nil {
			return store.Job{}, false, s.fail("claim job", err)
		}
		res, err := cmd.Text()
		if err != nil {
			return store.Job{}, false, s.fail("claim job", err)
		}
		switch res {
		case "gone", "ended":
			if err := s.rdb.ZRem(ctx, s.keys.runningJobs(), id).Err(); err != nil {
				return store.Job{}, false, s.fail("claim job: index", err)
			}
		case "ok":
			j, err := s.Job(ctx, id)
			if err != nil {
				return store.Job{}, false, err
			}
			return j, true, nil
		}
	}
	return store.Job{}, false, nil
}

// AdvanceJob runs the advance script on the job's hash, and drops an ended job from the
// running index.
func (s *Store) AdvanceJob(ctx context.Context, id, owner string, p store.JobProgress, lease time.Duration) error {
	if p.Renew {
		p = store.JobProgress{Renew: true, State: store.JobRunning}
	}
	switch p.State {
	case store.JobRunning, store.JobDone, store.JobFailed:
	default:
		return fmt.Errorf("advance job %q: unknown state %q", id, p.State)
	}
	renew := "0"
	if p.Renew {
		renew = "1"
	}
	c := p.Add
	cmd, err := s.eval(ctx, write, advanceJobLua, []string{s.keys.job(id)},
		owner, lease.Milliseconds(), p.Cursor, string(p.State), p.Error, unixMilli(p.At),
		c.Delivered, c.Queued, c.Duplicates, c.Expired, c.Failed, store.JobRetention.Milliseconds(), renew)
	if err != nil {
		return s.fail("advance job", err)
	}
	ok, err := cmd.Int()
	if err != nil {
		return s.fail("advance job", err)
	}
	if ok == 0 {
		return fmt.Errorf("advance job %q: %w", id, store.ErrNotOwner)
	}
	if p.State != store.JobRunning {
		if err := s.rdb.ZRem(ctx, s.keys.runningJobs(), id).Err(); err != nil {
			return s.fail("advance job: index", err)
		}
	}
	return nil
}
