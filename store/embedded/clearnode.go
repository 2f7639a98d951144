package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
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
