package embedded

import (
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// TestClearNodeInChunks clears a node with more clients than one transaction takes, and
// leaves the node index empty.
func TestClearNodeInChunks(t *testing.T) {
	s := openT(t)
	const clients = 2*clearChunk + 10
	err := s.update(ctxT(t), func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		for i := range clients {
			if err := b.setPresence(record{cur: storetest.NewPresence(fmt.Sprint("c", i), "n1", 4)}); err != nil {
				return err
			}
		}
		return b.setPresence(record{cur: storetest.NewPresence("other", "n1", 5)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.ClearNode(ctxT(t), "n1", 4); err != nil || n != clients {
		t.Fatalf("ClearNode = %d, %v; want %d", n, err, clients)
	}
	if got := count(t, s); got["presence"] != 1 || got["nodes"] != 1 {
		t.Fatalf("after ClearNode: %d presences, %d index entries; want 1 and 1 (other)", got["presence"], got["nodes"])
	}
}
