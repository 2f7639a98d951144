package store

import "context"

// Priority is a message's lane in its mailbox.
type Priority uint8

const (
	// PriorityNormal is the default lane.
	PriorityNormal Priority = 0
	// PriorityHigh is the lane a client's node drains first: its queued high-priority
	// messages go before its queued normal ones. Order is kept within a lane.
	PriorityHigh Priority = 1
)

// Priorities is the second lane of every mailbox, for high-priority messages. The router
// and the nodes use it when the store provides it (both store/redisstore and
// store/embedded do); every implementation passes the priority tests of storetest.Run.
//
// Append puts a message whose Priority is PriorityHigh in the high lane; Peek reads the
// normal lane only, PeekHigh the high lane only, each exactly as Peek is documented
// (oldest first, after a cursor, expired messages never returned). Sequence numbers are
// the client's, shared by both lanes (so an id and a Seq name one message whichever lane
// it is in). Everything else covers both lanes: a duplicate id is recognised in either,
// the mailbox limit counts both, a collapse key replaces a message in either, Remove
// deletes from either, Depth and Lookup count both, expiry applies to both.
type Priorities interface {
	PeekHigh(ctx context.Context, client string, after uint64, n int) ([]Message, error)
}
