package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

func scheduleOf(t *testing.T, st store.Store) store.Schedule {
	t.Helper()
	s, ok := st.(store.Schedule)
	if !ok {
		t.Fatalf("%T does not provide store.Schedule", st)
	}
	return s
}

func later(client, id string, delay time.Duration) store.Scheduled {
	return store.Scheduled{Message: NewMessage(client, id), Delay: delay}
}

func takenIDs(msgs []store.Message) []string {
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.To+"/"+m.ID)
	}
	return ids
}

// The schedule's times are the store's; the test reads them from its own clock, as
// bounds. A step that must come before a deadline is checked only when the test's clock
// shows it did (a loaded machine can stretch a store call past a short delay); a step that
// must come after one waits until the deadline has passed, from the moment the call
// that set it returned, plus clockSlack for a store that keeps its clock in milliseconds.
const clockSlack = 5 * time.Millisecond

// sleepPast waits until d after since has passed, and clockSlack more.
func sleepPast(since time.Time, d time.Duration) {
	time.Sleep(time.Until(since.Add(d + clockSlack)))
}

// testScheduleDueInOrder: messages come due after their delay, soonest first, leased
// while taken, until DoneScheduled.
func testScheduleDueInOrder(t *testing.T, st store.Store) {
	sc := scheduleOf(t, st)
	ctx := ctxT(t)
	// Long enough that the first take comes before either is due: a schedule and a take
	// slower than a second is a store fault, not load.
	const soon, next = time.Second, 1200 * time.Millisecond
	first := later("alice", "s1", next)
	first.Receipt = true
	first.CollapseKey, first.CollapseLimit, first.Priority = "k", 5, store.PriorityHigh
	before := time.Now()
	dup, err := sc.ScheduleMessages(ctx, []store.Scheduled{first, later("alice", "s2", 30*time.Minute), later("bob", "s3", soon)})
	scheduled := time.Now()
	if err != nil || !slices.Equal(dup, []bool{false, false, false}) {
		t.Fatalf("schedule: %v, %v", dup, err)
	}
	got, err := sc.TakeDue(ctx, 10, time.Minute)
	switch took := time.Since(before); {
	case err != nil:
		t.Fatalf("take before anything is due: %v", err)
	case took < soon && len(got) != 0:
		t.Fatalf("take %v after the schedule, before anything is due: %v", took, takenIDs(got))
	case len(got) != 0:
		t.Fatalf("the schedule and a take took %v, past the shortest delay (%v); took %v", took, soon, takenIDs(got))
	}
	dup, err = sc.ScheduleMessages(ctx, []store.Scheduled{later("alice", "s1", time.Minute)})
	if err != nil || !slices.Equal(dup, []bool{true}) {
		t.Fatalf("schedule again: %v, %v; want a duplicate", dup, err)
	}
	if s, err := receiptsOf(t, st).MessageState(ctx, "alice", "s1"); err != nil || !s.Pending {
		t.Fatalf("a scheduled message with a receipt: %+v, %v; want pending", s, err)
	}
	sleepPast(scheduled, next) // both delays have passed on the store's clock
	got, err = sc.TakeDue(ctx, 10, time.Minute)
	if err != nil || !slices.Equal(takenIDs(got), []string{"bob/s3", "alice/s1"}) {
		t.Fatalf("take: %v, %v; want bob/s3 then alice/s1", takenIDs(got), err)
	}
	m := got[1]
	if m.TTL <= 59*time.Minute || m.TTL > time.Hour || string(m.Payload) != "payload s1" || m.Topic != "t/s1" ||
		m.CollapseKey != "k" || m.CollapseLimit != 5 || m.Priority != store.PriorityHigh {
		t.Fatalf("taken message %+v", m)
	}
	if got, err := sc.TakeDue(ctx, 10, time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("take while leased: %v, %v", takenIDs(got), err)
	}
	if err := sc.DoneScheduled(ctx, store.MessageKey("bob", "s3"), store.MessageKey("alice", "s1")); err != nil {
		t.Fatal(err)
	}

	// A lease that runs out: the message is taken again, whole.
	if _, err := sc.ScheduleMessages(ctx, []store.Scheduled{later("carol", "s4", 10*time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	sleepPast(time.Now(), 10*time.Millisecond)
	const lease = 100 * time.Millisecond
	got, err = sc.TakeDue(ctx, 10, lease)
	taken := time.Now()
	if err != nil || !slices.Equal(takenIDs(got), []string{"carol/s4"}) {
		t.Fatalf("take: %v, %v; want carol/s4", takenIDs(got), err)
	}
	sleepPast(taken, lease)
	got, err = sc.TakeDue(ctx, 10, time.Minute)
	if err != nil || !slices.Equal(takenIDs(got), []string{"carol/s4"}) || string(got[0].Payload) != "payload s4" {
		t.Fatalf("take after the lease: %v, %v; want carol/s4 again", takenIDs(got), err)
	}
	if err := sc.DoneScheduled(ctx, store.MessageKey("carol", "s4"), store.MessageKey("carol", "s4")); err != nil {
		t.Fatal(err)
	}
	if n, err := sc.ScheduledCount(ctx); err != nil || n != 1 {
		t.Fatalf("count %d, %v; want 1 (alice/s2)", n, err)
	}
}

// testScheduleExpiredDropped: a due message that expired meanwhile is never returned.
func testScheduleExpiredDropped(t *testing.T, st store.Store) {
	sc := scheduleOf(t, st)
	ctx := ctxT(t)
	m := later("carol", "x", 10*time.Millisecond)
	m.TTL = 30 * time.Millisecond
	if _, err := sc.ScheduleMessages(ctx, []store.Scheduled{m}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond) // past its expiry
	if got, err := sc.TakeDue(ctx, 10, time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("take of an expired message: %v, %v", takenIDs(got), err)
	}
	if n, err := sc.ScheduledCount(ctx); err != nil || n != 0 {
		t.Fatalf("count %d, %v; want 0", n, err)
	}
	bad := later("carol", "y", time.Hour) // a delay at or past the TTL
	if _, err := sc.ScheduleMessages(ctx, []store.Scheduled{bad}); err == nil {
		t.Fatal("a delay past the TTL was taken")
	}
}
