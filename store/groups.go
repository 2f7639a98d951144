package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Groups are named sets of client ids (all the devices of a user, say) that a message can
// be fanned out to. A group exists while it has members. The router uses them when the
// store provides them (both store/redisstore and store/embedded do); every implementation
// passes the group tests of storetest.Run. Methods are safe for concurrent use.
type Groups interface {
	// ChangeGroup adds the ids in add to the group and then removes those in remove, in
	// one atomic step, and returns the group's size after it. Adding a member twice, or
	// removing one that is not there, changes nothing, so a retry is safe. At most
	// MaxGroupChange ids in all.
	ChangeGroup(ctx context.Context, name string, add, remove []string) (int, error)
	// GroupMembers returns up to n (at most MaxGroupPage) members that sort after after
	// (byte order; "" starts at the first) and the group's size. A walk that passes the
	// last member of each page as the next after sees every member that stays in the
	// group throughout, exactly once; the empty page ends it.
	GroupMembers(ctx context.Context, name, after string, n int) (members []string, size int, err error)
	// DeleteGroup deletes the group and reports whether it had members. Idempotent.
	DeleteGroup(ctx context.Context, name string) (bool, error)
}

const (
	// MaxGroupPage is the most members one GroupMembers call returns.
	MaxGroupPage = 1000
	// MaxGroupChange is the most ids one ChangeGroup call takes, added and removed.
	MaxGroupChange = 10_000
	// MaxGroupName is the longest group name, in bytes.
	MaxGroupName = 128
)

// CheckGroupChange refuses a ChangeGroup call no store takes. Every implementation calls
// it first.
func CheckGroupChange(name string, add, remove []string) error {
	if err := CheckGroupName(name); err != nil {
		return err
	}
	if len(add)+len(remove) > MaxGroupChange {
		return fmt.Errorf("group %q: %d ids is over the maximum of %d", name, len(add)+len(remove), MaxGroupChange)
	}
	for _, ids := range [][]string{add, remove} {
		for _, id := range ids {
			if id == "" {
				return fmt.Errorf("group %q: empty client id", name)
			}
		}
	}
	return nil
}

// CheckGroupName refuses a name that is empty or longer than MaxGroupName. (The router
// applies a stricter rule; the store only needs a name that fits its keys.)
func CheckGroupName(name string) error {
	switch {
	case name == "":
		return errors.New("empty group name")
	case len(name) > MaxGroupName:
		return fmt.Errorf("group name of %d bytes is over the maximum of %d", len(name), MaxGroupName)
	}
	return nil
}

// ErrNoJob means no job has the id asked for (it never existed, or it finished so long ago
// that the store forgot it: see JobRetention).
var ErrNoJob = errors.New("no such job")

// JobRetention is how long a store keeps a job after it ended.
const JobRetention = 7 * 24 * time.Hour

// JobState is where a job is.
type JobState string

const (
	// JobRunning: the job has recipients left to send to.
	JobRunning JobState = "running"
	// JobDone: every recipient was sent to (Counts say with what outcome).
	JobDone JobState = "done"
	// JobFailed: the job stopped before the end (Error says why).
	JobFailed JobState = "failed"
)

// JobCounts count a job's recipients by outcome.
type JobCounts struct {
	Delivered int `json:"delivered"`
	Queued    int `json:"queued"`
	// Duplicates were already in their mailbox: a page sent again after the job moved
	// to another router (or a retry of a store call whose answer was lost).
	Duplicates int `json:"duplicates"`
	Expired    int `json:"expired"`
	Failed     int `json:"failed"`
}

// Add returns c plus d.
func (c JobCounts) Add(d JobCounts) JobCounts {
	return JobCounts{
		Delivered: c.Delivered + d.Delivered, Queued: c.Queued + d.Queued,
		Duplicates: c.Duplicates + d.Duplicates, Expired: c.Expired + d.Expired, Failed: c.Failed + d.Failed,
	}
}

// Sum is the number of recipients counted.
func (c JobCounts) Sum() int { return c.Delivered + c.Queued + c.Duplicates + c.Expired + c.Failed }

// Job is a fan-out of one message to a group, run in the background by whichever router
// holds its lease, page by page from its cursor.
type Job struct {
	ID    string
	Group string
	// Spec is what to send, opaque to the store (the router's encoding).
	Spec  []byte
	State JobState
	// Cursor is the last member whose page was sent and counted ("" before the first).
	Cursor string
	// Total is the group's size when the job was created.
	Total  int
	Counts JobCounts
	// Error is why a failed job failed.
	Error string
	// Created, Updated and Ended are stamped by the routers on their own clocks:
	// informational only. Ended is zero while the job runs.
	Created, Updated, Ended time.Time
	// Owner is the router holding the job's lease ("" when none does); Claims counts the
	// times a router claimed it (more than one: it was resumed).
	Owner  string
	Claims int
}

// JobProgress is one step of a job, recorded by the lease holder.
type JobProgress struct {
	// Renew only renews (or, with a tiny lease, gives up) the lease: the other fields are
	// ignored, the cursor and counts stay as they are.
	Renew  bool
	Cursor string
	Add    JobCounts
	// State is JobRunning to go on, JobDone or JobFailed to end the job (and release it).
	State JobState
	Error string
	At    time.Time
}

// Jobs stores fan-out jobs so that any router can report one and any can resume one whose
// router died. Leases are judged on the store's clock. Methods are safe for concurrent
// use; every implementation passes the job tests of storetest.Run.
type Jobs interface {
	// CreateJob stores j (State running, no owner) unless a job with j.ID exists; either way
	// it returns the job stored and whether this call created it. A retry is safe.
	CreateJob(ctx context.Context, j Job) (Job, bool, error)
	// Job returns the job with id, or an error wrapping ErrNoJob.
	Job(ctx context.Context, id string) (Job, error)
	// ClaimJob gives owner the lease, for lease, on a running job whose lease is free,
	// expired or already owner's, and returns it; ok is false when there is none. Jobs
	// that owner holds already are returned first, so a holder that lost the answer to a
	// claim gets its job again.
	ClaimJob(ctx context.Context, owner string, lease time.Duration) (Job, bool, error)
	// AdvanceJob records p if owner holds the job's lease (even an expired one, as long
	// as no one else claimed it since) and renews the lease for lease; ErrNotOwner
	// otherwise, and nothing is recorded: the job moved to another router, which resumes
	// it from the cursor recorded last.
	AdvanceJob(ctx context.Context, id, owner string, p JobProgress, lease time.Duration) error
}

// CheckJob refuses a job no store takes.
func CheckJob(j Job) error {
	switch {
	case j.ID == "":
		return errors.New("job: empty id")
	case len(j.ID) > 128:
		return fmt.Errorf("job: id of %d bytes is too long", len(j.ID))
	case j.Group == "":
		return fmt.Errorf("job %s: empty group", j.ID)
	}
	return nil
}
