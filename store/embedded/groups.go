package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
)

var (
	_ store.Groups = (*Store)(nil)
	_ store.Jobs   = (*Store)(nil)
)

// The groups and jobs buckets are created by the first write that needs them, so that a
// file made before they existed opens unchanged. groups holds one nested bucket per group
// (keyed by its name) with its size and members (see sizeKey); jobs holds each job, keyed by its id,
// as JSON (storedJob).
var (
	bucketGroups = []byte("groups")
	bucketJobs   = []byte("jobs")
)

// A group's bucket holds its size under sizeKey, and each member under memberKey: "m" and
// the id, so that no id collides with the size and the members sort by id.
var (
	sizeKey = []byte("n")
	member  = []byte{1}
)

func memberKey(id string) []byte { return append([]byte("m"), id...) }

func groupSize(g *bolt.Bucket) int {
	v := g.Get(sizeKey)
	if len(v) != 8 {
		return 0
	}
	return int(binary.BigEndian.Uint64(v))
}

// ChangeGroup adds and removes members in one transaction; a group left empty is deleted.
func (s *Store) ChangeGroup(ctx context.Context, name string, add, remove []string) (int, error) {
	if err := store.CheckGroupChange(name, add, remove); err != nil {
		return 0, fmt.Errorf("change group: %w", err)
	}
	var size int
	err := s.update(ctx, func(tx *bolt.Tx) error {
		groups, err := tx.CreateBucketIfNotExists(bucketGroups)
		if err != nil {
			return err
		}
		g, err := groups.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		size = groupSize(g)
		for _, id := range add {
			if g.Get(memberKey(id)) != nil {
				continue
			}
			if err := g.Put(memberKey(id), member); err != nil {
				return err
			}
			size++
		}
		for _, id := range remove {
			if g.Get(memberKey(id)) == nil {
				continue
			}
			if err := g.Delete(memberKey(id)); err != nil {
				return err
			}
			size--
		}
		if size == 0 {
			return groups.DeleteBucket([]byte(name))
		}
		return g.Put(sizeKey, binary.BigEndian.AppendUint64(nil, uint64(size)))
	})
	if err != nil {
		return 0, s.fail("change group", err)
	}
	return size, nil
}

// GroupMembers walks the group's bucket from after.
func (s *Store) GroupMembers(ctx context.Context, name, after string, n int) ([]string, int, error) {
	if err := store.CheckGroupName(name); err != nil {
		return nil, 0, fmt.Errorf("group members: %w", err)
	}
	n = min(max(n, 0), store.MaxGroupPage)
	var members []string
	var size int
	err := s.view(ctx, func(tx *bolt.Tx) error {
		groups := tx.Bucket(bucketGroups)
		if groups == nil {
			return nil
		}
		g := groups.Bucket([]byte(name))
		if g == nil {
			return nil
		}
		size = groupSize(g)
		c := g.Cursor()
		k, _ := c.Seek(memberKey(after))
		if k != nil && after != "" && bytes.Equal(k, memberKey(after)) {
			k, _ = c.Next()
		}
		for ; k != nil && k[0] == 'm' && len(members) < n; k, _ = c.Next() {
			members = append(members, string(k[1:]))
		}
		return nil
	})
	if err != nil {
		return nil, 0, s.fail("group members", err)
	}
	return members, size, nil
}

// DeleteGroup deletes the group's bucket.
func (s *Store) DeleteGroup(ctx context.Context, name string) (bool, error) {
	if err := store.CheckGroupName(name); err != nil {
		return false, fmt.Errorf("delete group: %w", err)
	}
	var had bool
	err := s.update(ctx, func(tx *bolt.Tx) error {
		had = false
		groups := tx.Bucket(bucketGroups)
		if groups == nil || groups.Bucket([]byte(name)) == nil {
			return nil
		}
		had = true
		return groups.DeleteBucket([]byte(name))
	})
	if err != nil {
		return false, s.fail("delete group", err)
	}
	return had, nil
}

// storedJob is a job as the jobs bucket holds it. Lease is the lease's end on this
// process's clock, in Unix nanoseconds.
type storedJob struct {
	store.Job
	Lease int64 `json:"lease"`
}

func getJob(b *bolt.Bucket, id string) (storedJob, bool, error) {
	if b == nil {
		return storedJob{}, false, nil
	}
	v := b.Get([]byte(id))
	if v == nil {
		return storedJob{}, false, nil
	}
	var j storedJob
	if err := json.Unmarshal(v, &j); err != nil {
		return storedJob{}, false, fmt.Errorf("%w: job %q: %v", errCorrupt, id, err)
	}
	return j, true, nil
}

func putJob(b *bolt.Bucket, j storedJob) error {
	v, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return b.Put([]byte(j.ID), v)
}

// CreateJob stores the job unless its id is taken.
func (s *Store) CreateJob(ctx context.Context, j store.Job) (store.Job, bool, error) {
	if err := store.CheckJob(j); err != nil {
		return store.Job{}, false, fmt.Errorf("create job: %w", err)
	}
	var got store.Job
	var created bool
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketJobs)
		if err != nil {
			return err
		}
		old, ok, err := getJob(b, j.ID)
		if err != nil || ok {
			got, created = old.Job, false
			return err
		}
		nj := store.Job{ID: j.ID, Group: j.Group, Spec: j.Spec, State: store.JobRunning, Total: j.Total,
			Created: j.Created, Updated: j.Created}
		got, created = nj, true
		return putJob(b, storedJob{Job: nj})
	})
	if err != nil {
		return store.Job{}, false, s.fail("create job", err)
	}
	return got, created, nil
}

// Job reads the job.
func (s *Store) Job(ctx context.Context, id string) (store.Job, error) {
	var j storedJob
	var ok bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		j, ok, err = getJob(tx.Bucket(bucketJobs), id)
		return err
	})
	if err != nil {
		return store.Job{}, s.fail("job", err)
	}
	if !ok {
		return store.Job{}, fmt.Errorf("job %q: %w", id, store.ErrNoJob)
	}
	return j.Job, nil
}

// ClaimJob walks the jobs for a running one owner may take, its own first, and forgets
// jobs that ended more than store.JobRetention ago.
func (s *Store) ClaimJob(ctx context.Context, owner string, lease time.Duration) (store.Job, bool, error) {
	if owner == "" || lease <= 0 {
		return store.Job{}, false, fmt.Errorf("claim job: owner %q and lease %v must be set", owner, lease)
	}
	// A look first, so that a router polling for jobs costs no write while there are none.
	var any bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		if b == nil {
			return nil
		}
		now := time.Now().UnixNano()
		return b.ForEach(func(_, v []byte) error {
			var j storedJob
			if json.Unmarshal(v, &j) == nil && j.State == store.JobRunning && (j.Owner == owner || j.Owner == "" || j.Lease <= now) {
				any = true
			}
			return nil
		})
	})
	if err != nil || !any {
		return store.Job{}, false, s.fail("claim job", err)
	}
	var got store.Job
	var ok bool
	err = s.update(ctx, func(tx *bolt.Tx) error {
		got, ok = store.Job{}, false
		b := tx.Bucket(bucketJobs)
		if b == nil {
			return nil
		}
		now := time.Now()
		var free []storedJob
		var stale [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var j storedJob
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("%w: job %q: %v", errCorrupt, k, err)
			}
			switch {
			case j.State != store.JobRunning:
				if !j.Ended.IsZero() && now.Sub(j.Ended) > store.JobRetention {
					stale = append(stale, bytes.Clone(k))
				}
			case j.Owner == owner || j.Owner == "" || j.Lease <= now.UnixNano():
				free = append(free, j)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if len(free) == 0 {
			return nil
		}
		sort.SliceStable(free, func(a, b int) bool {
			if (free[a].Owner == owner) != (free[b].Owner == owner) {
				return free[a].Owner == owner
			}
			return free[a].Created.Before(free[b].Created)
		})
		j := free[0]
		if j.Owner != owner {
			j.Claims++
		}
		j.Owner, j.Lease = owner, now.Add(lease).UnixNano()
		got, ok = j.Job, true
		return putJob(b, j)
	})
	if err != nil {
		return store.Job{}, false, s.fail("claim job", err)
	}
	return got, ok, nil
}

// errLost is AdvanceJob's outcome for a caller that does not hold the lease; it is not a
// failure of the transaction, so it is reported outside it.
var errLost = errors.New("lost")

// AdvanceJob records progress for the lease holder.
func (s *Store) AdvanceJob(ctx context.Context, id, owner string, p store.JobProgress, lease time.Duration) error {
	if p.Renew {
		p = store.JobProgress{Renew: true, State: store.JobRunning}
	}
	switch p.State {
	case store.JobRunning, store.JobDone, store.JobFailed:
	default:
		return fmt.Errorf("advance job %q: unknown state %q", id, p.State)
	}
	var outcome error
	err := s.update(ctx, func(tx *bolt.Tx) error {
		outcome = nil
		b := tx.Bucket(bucketJobs)
		j, ok, err := getJob(b, id)
		if err != nil {
			return err
		}
		if !ok || j.Owner != owner || j.State != store.JobRunning {
			outcome = errLost
			return nil
		}
		j.Lease = time.Now().Add(lease).UnixNano()
		if p.Renew {
			return putJob(b, j)
		}
		j.Cursor, j.Updated = p.Cursor, p.At
		j.Counts = j.Counts.Add(p.Add)
		if p.State != store.JobRunning {
			j.State, j.Error, j.Ended, j.Owner, j.Lease = p.State, p.Error, p.At, "", 0
		}
		return putJob(b, j)
	})
	if err != nil {
		return s.fail("advance job", err)
	}
	if outcome != nil {
		return fmt.Errorf("advance job %q: %w", id, store.ErrNotOwner)
	}
	return nil
}
