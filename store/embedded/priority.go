package embedded

import (
	"bytes"
	"context"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
)

var _ store.Priorities = (*Store)(nil)

// bucketHigh indexes the high lane of the mailboxes (store.Priorities): seqKey(client,
// seq) -> highMark for each message of client's mailbox that is in it. The messages stay
// in the messages bucket, both lanes in one sequence, so that the mailbox header's depth,
// the id index (duplicates, Remove, collapse keys) and the expiry index (the sweeper)
// cover both lanes with no change. It is created by the first append of a high-priority
// message, so older files open unchanged.
var bucketHigh = []byte("high")

// highMark is the value of a high index entry: not empty, because bbolt's Get may answer
// nil for an empty value as for a missing key.
var highMark = []byte{1}

// createHigh creates the high lane's index when msgs need it.
func createHigh(tx *bolt.Tx, msgs []store.Message) error {
	for _, m := range msgs {
		if m.Priority == store.PriorityHigh {
			_, err := tx.CreateBucketIfNotExists(bucketHigh)
			return err
		}
	}
	return nil
}

// PeekHigh is Peek for the high lane of the client's mailbox: it walks the high index
// after the cursor and reads each message it names.
func (s *Store) PeekHigh(ctx context.Context, client string, after uint64, n int) ([]store.Message, error) {
	return s.peekLane(ctx, "peek high", client, store.PriorityHigh, after, n)
}

// laneIter walks the messages of one lane of one client's mailbox, oldest first. The high
// lane walks its index and reads each message; the normal lane walks the messages and
// skips those the index names. So a walk of the normal lane past many high messages costs
// a lookup for each: the mailbox limit bounds them.
type laneIter struct {
	b      buckets
	client []byte
	high   bool
	c      *bolt.Cursor // on the high index for the high lane, else on the messages; nil: empty
}

// lane returns a walk of client's lane; seek starts it.
func (b buckets) lane(client []byte, lane store.Priority) *laneIter {
	it := &laneIter{b: b, client: client, high: lane == store.PriorityHigh}
	switch {
	case !it.high:
		it.c = b.messages.Cursor()
	case b.high != nil:
		it.c = b.high.Cursor()
	}
	return it
}

// seek moves to the lane's first message whose sequence number is from or more and
// returns it; v is nil past the lane's last.
func (it *laneIter) seek(from uint64) (seq uint64, v []byte) {
	if it.c == nil {
		return 0, nil
	}
	k, v := it.c.Seek(seqKey(it.client, from))
	return it.settle(k, v)
}

// next moves to the lane's next message and returns it, as seek.
func (it *laneIter) next() (seq uint64, v []byte) {
	if it.c == nil {
		return 0, nil
	}
	k, v := it.c.Next()
	return it.settle(k, v)
}

// settle moves on from the cursor's entry k (with value v) to the first that is a message
// of the lane, and returns it.
func (it *laneIter) settle(k, v []byte) (uint64, []byte) {
	for ; k != nil && bytes.HasPrefix(k, it.client); k, v = it.c.Next() {
		if it.high {
			// An index entry without its message, which no write leaves behind, is
			// passed over.
			if v = it.b.messages.Get(k); v != nil {
				return binary.BigEndian.Uint64(k[len(it.client):]), v
			}
			continue
		}
		if it.b.high == nil || it.b.high.Get(k) == nil {
			return binary.BigEndian.Uint64(k[len(it.client):]), v
		}
	}
	return 0, nil
}
