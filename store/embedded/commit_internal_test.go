package embedded

import (
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"
)

var testBucket = []byte("test")

// put returns a write that puts key in the test bucket and then returns err.
func put(key string, err error) *write {
	return &write{done: make(chan error, 1), fn: func(tx *bolt.Tx) error {
		b, e := tx.CreateBucketIfNotExists(testBucket)
		if e != nil {
			return e
		}
		if e := b.Put([]byte(key), []byte(key)); e != nil {
			return e
		}
		return err
	}}
}

func keys(t *testing.T, s *Store) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(testBucket); b != nil {
			return b.ForEach(func(k, _ []byte) error { got[string(k)] = true; return nil })
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestGroupIsolatesFailure: a write that fails, or panics, in a group gets its error and
// leaves nothing; the others in its group are committed.
func TestGroupIsolatesFailure(t *testing.T) {
	s := openT(t)
	boom := errors.New("boom")
	panics := &write{done: make(chan error, 1), fn: func(*bolt.Tx) error { panic("bad write") }}
	group := []*write{put("a", nil), put("b", boom), put("c", nil), panics, put("d", nil)}
	s.commit(append([]*write(nil), group...)) // commit reuses its argument
	for i, want := range []error{nil, boom, nil, nil, nil} {
		err := <-group[i].done
		if i == 3 {
			if err == nil {
				t.Fatal("the panicking write reported no error")
			}
			continue
		}
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Fatalf("write %d: %v, want %v", i, err, want)
		}
	}
	got := keys(t, s)
	if !got["a"] || got["b"] || !got["c"] || !got["d"] {
		t.Fatalf("keys after commit: %v, want a, c and d", got)
	}
}

// TestAbandonedWriteNeverRuns: a write whose caller gave up before the committer took it
// is skipped.
func TestAbandonedWriteNeverRuns(t *testing.T) {
	s := openT(t)
	gone := put("gone", nil)
	gone.state.Store(writeAbandoned)
	kept := put("kept", nil)
	s.commit([]*write{gone, kept})
	if err := <-kept.done; err != nil {
		t.Fatal(err)
	}
	if got := keys(t, s); got["gone"] || !got["kept"] {
		t.Fatalf("keys after commit: %v, want only kept", got)
	}
	select {
	case err := <-gone.done:
		t.Fatalf("the abandoned write was answered: %v", err)
	default:
	}
}
