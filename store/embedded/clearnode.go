package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
)

// clearChunk is how many clients one ClearNode transaction clears: a node with many
// clients is cleared in several commits, so the writes queued behind it wait for one
// chunk, not for all of them.
const clearChunk = 1000

// ClearNode clears the presence of every client whose presence names node at epoch, and
// returns how many it cleared; their pending takeovers stay. The node index is exact (every presence change updates it
// in the same transaction), so ClearNode visits only the clients it clears. Each client
// is cleared atomically; a node's clients are cleared in chunks, not all at once.
func (s *Store) ClearNode(ctx context.Context, node string, epoch int64) (int, error) {
	if node == "" {
		return 0, errors.New("clear node: empty node")
	}
	prefix := nodeEpochPrefix(node, epoch)
	cleared := 0
	for {
		n, more := 0, false
		err := s.update(ctx, func(tx *bolt.Tx) error {
			var err error
			n, more, err = clearSome(bucketsOf(tx), node, epoch, prefix)
			return err
		})
		if err != nil {
			return cleared, s.fail("clear node", err)
		}
		cleared += n
		if !more {
			return cleared, nil
		}
	}
}

// clearSome clears up to clearChunk clients from the index entries under prefix, and
// reports whether entries remain. An entry whose presence names another node or epoch
// (which no write leaves behind) is dropped without clearing anything.
func clearSome(b buckets, node string, epoch int64, prefix []byte) (cleared int, more bool, err error) {
	var keys [][]byte
	c := b.nodes.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(keys) == clearChunk {
			more = true
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		client, rest, ok := readName(k[len(prefix):])
		if !ok || len(rest) != 0 {
			return cleared, more, fmt.Errorf("%w: node index key %x", errCorrupt, k)
		}
		rec, err := b.record(client)
		if err != nil {
			return cleared, more, err
		}
		if rec.cur.Node == node && rec.cur.Epoch == epoch {
			if err := b.clearPresence(client, rec); err != nil {
				return cleared, more, err
			}
			cleared++
			continue
		}
		if err := b.nodes.Delete(k); err != nil {
			return cleared, more, fmt.Errorf("drop stale index entry: %w", err)
		}
	}
	return cleared, more, nil
}

// RecordedEpochs returns up to max distinct (node, epoch) pairs of the node index after
// after, in key order (by name(node), then epoch). The index is exact, so a pair is there
// exactly while some presence names it: the pairs a reaper must look at.
func (s *Store) RecordedEpochs(ctx context.Context, after store.NodeEpoch, max int) ([]store.NodeEpoch, error) {
	if max <= 0 {
		return nil, nil
	}
	max = min(max, store.MaxRecordedEpochs)
	var out []store.NodeEpoch
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketNodes).Cursor()
		var k []byte
		if after == (store.NodeEpoch{}) {
			k, _ = c.First()
		} else if next := prefixEnd(nodeEpochPrefix(after.Node, after.Epoch)); next != nil {
			k, _ = c.Seek(next)
		}
		for k != nil && len(out) < max {
			node, rest, ok := readName(k)
			if !ok || len(rest) < 8 {
				return fmt.Errorf("%w: node index key %x", errCorrupt, k)
			}
			out = append(out, store.NodeEpoch{Node: node, Epoch: readOrderedInt(rest)})
			next := prefixEnd(k[:len(k)-len(rest)+8])
			if next == nil {
				break
			}
			k, _ = c.Seek(next)
		}
		return nil
	})
	if err != nil {
		return nil, s.fail("recorded epochs", err)
	}
	return out, nil
}

// prefixEnd is the first key after every key that starts with p (nil: there is none).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
