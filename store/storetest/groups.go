package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

func groupsOf(t *testing.T, st store.Store) store.Groups {
	t.Helper()
	g, ok := st.(store.Groups)
	if !ok {
		t.Fatalf("%T does not provide store.Groups", st)
	}
	return g
}

func jobsOf(t *testing.T, st store.Store) store.Jobs {
	t.Helper()
	j, ok := st.(store.Jobs)
	if !ok {
		t.Fatalf("%T does not provide store.Jobs", st)
	}
	return j
}

// members reads the whole group, page by page of n.
func members(t *testing.T, g store.Groups, name string, n int) ([]string, int) {
	t.Helper()
	var all []string
	after, size := "", 0
	for range 10_000 {
		page, sz, err := g.GroupMembers(ctxT(t), name, after, n)
		if err != nil {
			t.Fatalf("group members of %q after %q: %v", name, after, err)
		}
		size = sz
		if len(page) == 0 {
			return all, size
		}
		if len(page) > n {
			t.Fatalf("group members: %d for a page of %d", len(page), n)
		}
		all = append(all, page...)
		after = page[len(page)-1]
	}
	t.Fatal("group walk did not end")
	return nil, 0
}

func testGroupChange(t *testing.T, st store.Store) {
	g := groupsOf(t, st)
	ctx := ctxT(t)
	if m, size := members(t, g, "nobody", 10); len(m) != 0 || size != 0 {
		t.Fatalf("an unknown group: members %v size %d, want none", m, size)
	}
	n, err := g.ChangeGroup(ctx, "family", []string{"c", "a", "b", "a"}, nil)
	if err != nil || n != 3 {
		t.Fatalf("add a, b, c (a twice): size %d, %v; want 3", n, err)
	}
	// Add and remove in one call; removing an absent member changes nothing.
	if n, err = g.ChangeGroup(ctx, "family", []string{"d"}, []string{"b", "zz"}); err != nil || n != 3 {
		t.Fatalf("add d, remove b and zz: size %d, %v; want 3", n, err)
	}
	// A retry of the same change is the same change.
	if n, err = g.ChangeGroup(ctx, "family", []string{"d"}, []string{"b", "zz"}); err != nil || n != 3 {
		t.Fatalf("the change again: size %d, %v; want 3", n, err)
	}
	if m, size := members(t, g, "family", 10); !slices.Equal(m, []string{"a", "c", "d"}) || size != 3 {
		t.Fatalf("members %v size %d, want [a c d] 3", m, size)
	}
	// Client ids are any bytes but empty: unicode and separators included.
	odd := []string{"ü/ñ", "x:y", "{tag}", " space"}
	if n, err = g.ChangeGroup(ctx, "family", odd, nil); err != nil || n != 7 {
		t.Fatalf("add odd ids: size %d, %v; want 7", n, err)
	}
	want := slices.Sorted(slices.Values(append([]string{"a", "c", "d"}, odd...)))
	if m, _ := members(t, g, "family", 2); !slices.Equal(m, want) {
		t.Fatalf("members %q, want %q", m, want)
	}
}

func testGroupPages(t *testing.T, st store.Store) {
	g := groupsOf(t, st)
	ctx := ctxT(t)
	const total = 25_000 // more than one change's maximum, and many pages
	var want []string
	for start := 0; start < total; start += store.MaxGroupChange {
		var add []string
		for i := start; i < min(start+store.MaxGroupChange, total); i++ {
			add = append(add, fmt.Sprintf("client-%06d", i))
		}
		n, err := g.ChangeGroup(ctx, "big", add, nil)
		if err != nil || n != min(start+store.MaxGroupChange, total) {
			t.Fatalf("add %d from %d: size %d, %v", len(add), start, n, err)
		}
		want = append(want, add...)
	}
	got, size := members(t, g, "big", store.MaxGroupPage)
	if size != total || !slices.Equal(got, want) {
		t.Fatalf("walk: %d members (size %d), want %d in order", len(got), size, total)
	}
	// A page larger than the maximum is cut to it.
	page, _, err := g.GroupMembers(ctx, "big", "", 5000)
	if err != nil || len(page) != store.MaxGroupPage {
		t.Fatalf("a page of 5000: %d members, %v; want %d", len(page), err, store.MaxGroupPage)
	}
	// After a member that is not in the group: from the next one that is.
	page, _, err = g.GroupMembers(ctx, "big", "client-000009x", 2)
	if err != nil || !slices.Equal(page, []string{"client-000010", "client-000011"}) {
		t.Fatalf("after an absent member: %v, %v", page, err)
	}
}

func testGroupNames(t *testing.T, st store.Store) {
	g := groupsOf(t, st)
	ctx := ctxT(t)
	for i, name := range []string{"a", "a:b", "a}", "{a}", "ab"} {
		if _, err := g.ChangeGroup(ctx, name, []string{fmt.Sprint("m", i)}, nil); err != nil {
			t.Fatalf("add to %q: %v", name, err)
		}
	}
	for i, name := range []string{"a", "a:b", "a}", "{a}", "ab"} {
		if m, size := members(t, g, name, 10); !slices.Equal(m, []string{fmt.Sprint("m", i)}) || size != 1 {
			t.Fatalf("group %q: %v size %d, want only m%d", name, m, size, i)
		}
	}
}

func testGroupDelete(t *testing.T, st store.Store) {
	g := groupsOf(t, st)
	ctx := ctxT(t)
	if _, err := g.ChangeGroup(ctx, "g", []string{"a", "b"}, nil); err != nil {
		t.Fatal(err)
	}
	if had, err := g.DeleteGroup(ctx, "g"); err != nil || !had {
		t.Fatalf("delete: %v, %v; want true", had, err)
	}
	if had, err := g.DeleteGroup(ctx, "g"); err != nil || had {
		t.Fatalf("delete again: %v, %v; want false", had, err)
	}
	if m, size := members(t, g, "g", 10); len(m) != 0 || size != 0 {
		t.Fatalf("after delete: %v size %d", m, size)
	}
	// Removing the last member deletes the group too.
	if _, err := g.ChangeGroup(ctx, "h", []string{"a"}, nil); err != nil {
		t.Fatal(err)
	}
	if n, err := g.ChangeGroup(ctx, "h", nil, []string{"a"}); err != nil || n != 0 {
		t.Fatalf("remove the last: size %d, %v", n, err)
	}
	if had, err := g.DeleteGroup(ctx, "h"); err != nil || had {
		t.Fatalf("delete an emptied group: %v, %v; want false", had, err)
	}
}

func testGroupBadInput(t *testing.T, st store.Store) {
	g := groupsOf(t, st)
	ctx := ctxT(t)
	if _, err := g.ChangeGroup(ctx, "", []string{"a"}, nil); err == nil {
		t.Error("empty name accepted")
	}
	if _, err := g.ChangeGroup(ctx, "g", []string{"a", ""}, nil); err == nil {
		t.Error("empty member accepted")
	}
	if _, err := g.ChangeGroup(ctx, "g", make([]string, store.MaxGroupChange+1), nil); err == nil {
		t.Error("too many ids accepted")
	}
	if m, _ := members(t, g, "g", 10); len(m) != 0 {
		t.Fatalf("a refused change stored %v", m)
	}
}

func newJob(id string) store.Job {
	return store.Job{ID: id, Group: "g", Spec: []byte(`{"payload":"x"}`), Total: 10, Created: time.Now().Truncate(time.Millisecond)}
}

func testJobCreateOnce(t *testing.T, st store.Store) {
	js := jobsOf(t, st)
	ctx := ctxT(t)
	if _, err := js.Job(ctx, "j1"); !errors.Is(err, store.ErrNoJob) {
		t.Fatalf("unknown job: %v, want ErrNoJob", err)
	}
	first := newJob("j1")
	j, created, err := js.CreateJob(ctx, first)
	if err != nil || !created {
		t.Fatalf("create: %v, %v", created, err)
	}
	if j.State != store.JobRunning || j.Total != 10 || j.Group != "g" || string(j.Spec) != `{"payload":"x"}` {
		t.Fatalf("created %+v", j)
	}
	other := newJob("j1")
	other.Total = 99
	j, created, err = js.CreateJob(ctx, other)
	if err != nil || created || j.Total != 10 {
		t.Fatalf("create again: %+v created %v, %v; want the first, not created", j, created, err)
	}
	got, err := js.Job(ctx, "j1")
	if err != nil || got.Total != 10 || !got.Created.Equal(first.Created) {
		t.Fatalf("job: %+v, %v", got, err)
	}
}

func testJobLease(t *testing.T, st store.Store) {
	js := jobsOf(t, st)
	ctx := ctxT(t)
	if _, ok, err := js.ClaimJob(ctx, "a", time.Minute); err != nil || ok {
		t.Fatalf("claim with no jobs: %v, %v", ok, err)
	}
	if _, _, err := js.CreateJob(ctx, newJob("j")); err != nil {
		t.Fatal(err)
	}
	j, ok, err := js.ClaimJob(ctx, "a", time.Minute)
	if err != nil || !ok || j.ID != "j" || j.Owner != "a" || j.Claims != 1 {
		t.Fatalf("a claims: %+v %v, %v", j, ok, err)
	}
	if _, ok, err := js.ClaimJob(ctx, "b", time.Minute); err != nil || ok {
		t.Fatalf("b claims a held job: %v, %v", ok, err)
	}
	// The holder claiming again (a lost answer) gets it again, not counted as a resume.
	if j, ok, err = js.ClaimJob(ctx, "a", time.Minute); err != nil || !ok || j.Claims != 1 {
		t.Fatalf("a claims again: %+v %v, %v", j, ok, err)
	}
	step := store.JobProgress{Cursor: "m5", Add: store.JobCounts{Queued: 4, Delivered: 1}, State: store.JobRunning, At: time.Now()}
	if err := js.AdvanceJob(ctx, "j", "a", step, time.Minute); err != nil {
		t.Fatalf("a advances: %v", err)
	}
	if err := js.AdvanceJob(ctx, "j", "b", step, time.Minute); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("b advances a's job: %v, want ErrNotOwner", err)
	}
	if err := js.AdvanceJob(ctx, "nope", "a", step, time.Minute); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("advance an unknown job: %v, want ErrNotOwner", err)
	}
	got, err := js.Job(ctx, "j")
	if err != nil || got.Cursor != "m5" || got.Counts != (store.JobCounts{Queued: 4, Delivered: 1}) || got.Owner != "a" {
		t.Fatalf("after one step: %+v, %v", got, err)
	}
	// A renewal changes the lease only, whatever else it carries.
	renew := store.JobProgress{Renew: true, Cursor: "zz", Add: store.JobCounts{Queued: 100}, State: store.JobDone}
	if err := js.AdvanceJob(ctx, "j", "a", renew, time.Minute); err != nil {
		t.Fatalf("a renews: %v", err)
	}
	if err := js.AdvanceJob(ctx, "j", "b", renew, time.Minute); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("b renews a's lease: %v, want ErrNotOwner", err)
	}
	got, err = js.Job(ctx, "j")
	if err != nil || got.Cursor != "m5" || got.Counts != (store.JobCounts{Queued: 4, Delivered: 1}) || got.State != store.JobRunning || got.Owner != "a" {
		t.Fatalf("after a renewal: %+v, %v", got, err)
	}
	// Renewed to a lease of 1ms, the job is given up: b claims it at once.
	if err := js.AdvanceJob(ctx, "j", "a", store.JobProgress{Renew: true}, time.Millisecond); err != nil {
		t.Fatalf("a gives the job up: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		j, ok, err := js.ClaimJob(ctx, "b", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if j.Cursor != "m5" || j.Owner != "b" {
				t.Fatalf("b claims a given-up job: %+v", j)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b could not claim a job given up with a lease of 1ms")
		}
		time.Sleep(5 * time.Millisecond) // the store's clock passing the 1ms, bounded by the deadline
	}
}

func testJobLeaseExpires(t *testing.T, st store.Store) {
	js := jobsOf(t, st)
	ctx := ctxT(t)
	if _, _, err := js.CreateJob(ctx, newJob("j")); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := js.ClaimJob(ctx, "a", 200*time.Millisecond); err != nil || !ok {
		t.Fatalf("a claims: %v, %v", ok, err)
	}
	step := store.JobProgress{Cursor: "m1", Add: store.JobCounts{Queued: 1}, State: store.JobRunning, At: time.Now()}
	// a's lease runs out while it is away; its advance still counts until b claims.
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, ok, err := js.ClaimJob(ctx, "b", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if j.Owner != "b" || j.Claims != 2 || j.Cursor != "" {
				t.Fatalf("b's claim: %+v", j)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never claimed the job after a's lease of 200ms")
		}
		time.Sleep(50 * time.Millisecond) // polling the store's clock, bounded by the deadline
	}
	if err := js.AdvanceJob(ctx, "j", "a", step, time.Minute); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("a advances after b claimed: %v, want ErrNotOwner", err)
	}
	if got, _ := js.Job(ctx, "j"); got.Counts.Queued != 0 {
		t.Fatalf("a's late step was recorded: %+v", got)
	}
}

func testJobEnds(t *testing.T, st store.Store) {
	js := jobsOf(t, st)
	ctx := ctxT(t)
	for _, id := range []string{"j1", "j2"} {
		if _, _, err := js.CreateJob(ctx, newJob(id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []store.JobState{store.JobDone, store.JobFailed} {
		j, ok, err := js.ClaimJob(ctx, "a", time.Minute)
		if err != nil || !ok {
			t.Fatalf("claim: %v, %v", ok, err)
		}
		at := time.Now().Truncate(time.Millisecond)
		end := store.JobProgress{Cursor: "z", Add: store.JobCounts{Queued: 10}, State: want, Error: "why", At: at}
		if err := js.AdvanceJob(ctx, j.ID, "a", end, time.Minute); err != nil {
			t.Fatalf("end %s: %v", j.ID, err)
		}
		got, err := js.Job(ctx, j.ID)
		if err != nil || got.State != want || got.Owner != "" || !got.Ended.Equal(at) || got.Counts.Queued != 10 || got.Error != "why" {
			t.Fatalf("ended %s: %+v, %v", j.ID, got, err)
		}
		if err := js.AdvanceJob(ctx, j.ID, "a", end, time.Minute); !errors.Is(err, store.ErrNotOwner) {
			t.Fatalf("advance an ended job: %v, want ErrNotOwner", err)
		}
	}
	if j, ok, err := js.ClaimJob(ctx, "b", time.Minute); err != nil || ok {
		t.Fatalf("claim after both ended: %+v %v, %v", j, ok, err)
	}
}
