package store

import (
	"context"
	"fmt"
	"time"
)

// Schedule holds messages sent for later (a send's deliver_at) until their time comes,
// when a router appends them to their mailboxes. The router uses it when the store
// provides it (both store/redisstore and store/embedded do); every implementation passes
// the schedule tests of storetest.Run. Times are the store's: a message is due Delay
// after Schedule stored it, on the store's clock, and expires TTL after that same moment.
// Methods are safe for concurrent use.
type Schedule interface {
	// ScheduleMessages stores each message (its Delay and TTL set; Delay less than TTL)
	// until it is due, unless one with the same recipient and id is scheduled already
	// (then it reports it as a duplicate and changes nothing). A store that keeps
	// receipts registers the messages with Receipt set, as Append does.
	ScheduleMessages(ctx context.Context, msgs []Scheduled) (duplicate []bool, err error)
	// TakeDue returns up to n (at most MaxScheduledTake) due messages, the soonest due
	// first, each with the TTL it has left, and leases them for lease: until the lease runs
	// out no other TakeDue returns them. The taker appends them to their
	// mailboxes and then calls DoneScheduled; a taker that dies leaves them to the next
	// one after the lease (which may append a message twice: the mailbox recognises the
	// id while the first copy waits in it). Due messages already expired are dropped
	// (their registration, if any, ends in the receipts' sweep).
	TakeDue(ctx context.Context, n int, lease time.Duration) ([]Message, error)
	// DoneScheduled forgets the named scheduled messages (their MessageKey). Idempotent.
	DoneScheduled(ctx context.Context, keys ...string) error
	// ScheduledCount returns how many messages wait for their time (or for a taker).
	ScheduledCount(ctx context.Context) (int, error)
}

// Scheduled is a message to send later.
type Scheduled struct {
	Message
	// Delay is how long from now (on the store's clock) the message becomes due.
	Delay time.Duration
}

// MaxScheduledTake is the most messages one TakeDue returns.
const MaxScheduledTake = 1000

// CheckSchedule refuses scheduled messages no store takes.
func CheckSchedule(msgs []Scheduled) error {
	for i, m := range msgs {
		if err := CheckAppend(1, []Message{m.Message}); err != nil {
			return fmt.Errorf("schedule: message %d: %w", i, err)
		}
		if m.Delay <= 0 || m.Delay >= m.TTL {
			return fmt.Errorf("schedule %q to %q: delay %v must be positive and less than the TTL %v", m.ID, m.To, m.Delay, m.TTL)
		}
	}
	return nil
}
