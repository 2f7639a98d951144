package embedded

import (
	"context"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// openT opens a store in a fresh directory whose sweeper stays out of the way, and closes
// it when the test ends.
func openT(t testing.TB) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.SweepInterval = time.Hour
	s, err := Open(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fill appends the messages to their mailboxes in one transaction, which is much faster
// than one Append each. Unlike Append it takes any TTL, a negative one included: the
// message then expired that long ago.
func fill(t testing.TB, s *Store, msgs []store.Message) {
	t.Helper()
	err := s.update(ctxT(t), func(tx *bolt.Tx) error {
		if err := createCollapse(tx, msgs); err != nil {
			return err
		}
		if err := createHigh(tx, msgs); err != nil {
			return err
		}
		_, _, err := bucketsOf(tx).appendAll(msgs, 1<<30, true, time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// expiredMessage is a message for client that expired a second ago.
func expiredMessage(client, id string) store.Message {
	m := storetest.NewMessage(client, id)
	m.TTL = -time.Second
	return m
}

// count returns how many keys each bucket holds.
func count(t *testing.T, s *Store) map[string]int {
	t.Helper()
	n := map[string]int{}
	err := s.view(ctxT(t), func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			n[string(name)] = tx.Bucket(name).Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
