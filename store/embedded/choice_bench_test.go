//go:build storechoice

package embedded_test

// These benchmarks chose the engine behind this package (docs/BENCHMARKS.md, "Embedded store", has the
// figures). They model a mailbox on each engine directly, without the package, so the two
// engines are compared on the same work:
//
//   - append: check the message id is new, write the message and its id index entry, and
//     commit durably (fsync), one message per commit;
//   - drain: read a batch of 32 messages from the head, then delete them and their id
//     entries and commit durably.
//
// Each benchmark runs clients goroutines, one per mailbox, each appending or draining its
// own mailbox, with 256-byte payloads. bbolt is measured with one db.Update per operation,
// with db.Batch (its defaults: up to 1000 calls or 10ms), and with a group committer that
// puts every operation that arrived during one commit into the next; pebble commits with
// pebble.Sync, whose commit pipeline already shares one WAL fsync between concurrent
// batches.
//
// The build tag keeps pebble out of the package's normal build and test runs. Reproduce
// with:
//
//	go test -tags storechoice -run '^$' -bench Choice -benchtime 2s -count 3 ./store/embedded/

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble"
	bolt "go.etcd.io/bbolt"
)

const (
	choicePayload = 256 // bytes per message
	choiceBatch   = 32  // messages per drain
)

// choiceEngine is one engine holding the benchmark's mailboxes. Each client's methods are
// called from one goroutine only; different clients run concurrently.
type choiceEngine interface {
	// append adds message seq to client's mailbox durably.
	append(client int, seq uint64) error
	// drain reads the n messages from head on and deletes them durably.
	drain(client int, head uint64, n int) error
	// preload adds messages [0, count) to client's mailbox without syncing each.
	preload(client int, count uint64) error
	close() error
}

func BenchmarkChoice(b *testing.B) {
	engines := []struct {
		name string
		open func(b *testing.B, clients int) choiceEngine
	}{
		{"bbolt-update", func(b *testing.B, n int) choiceEngine { return openBolt(b, n, boltUpdate) }},
		{"bbolt-batch", func(b *testing.B, n int) choiceEngine { return openBolt(b, n, boltBatch) }},
		{"bbolt-group", func(b *testing.B, n int) choiceEngine { return openBolt(b, n, boltGroup) }},
		{"pebble-sync", openPebble},
	}
	for _, clients := range []int{1, 8} {
		for _, e := range engines {
			b.Run(fmt.Sprintf("append/clients=%d/%s", clients, e.name), func(b *testing.B) {
				eng := e.open(b, clients)
				b.ResetTimer()
				runClients(b, clients, func(c int, i uint64) error { return eng.append(c, i) })
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
	for _, e := range engines {
		const clients = 8
		b.Run(fmt.Sprintf("drain/clients=%d/%s", clients, e.name), func(b *testing.B) {
			eng := e.open(b, clients)
			for c := range clients {
				if err := eng.preload(c, uint64(opsFor(b.N, clients, c)*choiceBatch)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			runClients(b, clients, func(c int, i uint64) error {
				return eng.drain(c, i*choiceBatch, choiceBatch)
			})
			b.ReportMetric(float64(b.N*choiceBatch)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// opsFor is how many of n operations client c of clients runs.
func opsFor(n, clients, c int) int {
	ops := n / clients
	if c < n%clients {
		ops++
	}
	return ops
}

// runClients runs b.N operations spread over clients goroutines, each calling op with its
// client number and its own operation count.
func runClients(b *testing.B, clients int, op func(c int, i uint64) error) {
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range opsFor(b.N, clients, c) {
				if err := op(c, uint64(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// The keys: a message under "<client>q<seq>", its id entry under "<client>i<id>".
func clientPrefix(c int) []byte { return fmt.Appendf(nil, "c%03d/", c) }

func msgKey(c int, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(clientPrefix(c), 'q'), seq)
}

func idKey(c int, seq uint64) []byte { return fmt.Appendf(append(clientPrefix(c), 'i'), "m%d", seq) }

func payload(seq uint64) []byte {
	p := bytes.Repeat([]byte{'x'}, choicePayload)
	binary.BigEndian.PutUint64(p, seq)
	return p
}

var errDup = errors.New("duplicate id")

// boltMode is how bolt commits.
type boltMode int

const (
	boltUpdate boltMode = iota // one db.Update per operation
	boltBatch                  // db.Batch
	boltGroup                  // a group committer goroutine
)

type boltEngine struct {
	db    *bolt.DB
	mode  boltMode
	reqs  chan boltReq
	wg    sync.WaitGroup
	names [][]byte
}

type boltReq struct {
	fn   func(*bolt.Tx) error
	done chan error
}

func openBolt(b *testing.B, clients int, mode boltMode) choiceEngine {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	e := &boltEngine{db: db, mode: mode, reqs: make(chan boltReq)}
	err = db.Update(func(tx *bolt.Tx) error {
		for c := range clients {
			e.names = append(e.names, clientPrefix(c))
			if _, err := tx.CreateBucket(clientPrefix(c)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if mode == boltGroup {
		e.wg.Go(e.commitLoop)
	}
	b.Cleanup(func() {
		if err := e.close(); err != nil {
			b.Error(err)
		}
	})
	return e
}

// commitLoop runs every request that is waiting in one transaction.
func (e *boltEngine) commitLoop() {
	var group []boltReq
	for r := range e.reqs {
		group = append(group[:0], r)
	more:
		for len(group) < 256 {
			select {
			case r, ok := <-e.reqs:
				if !ok {
					break more
				}
				group = append(group, r)
			default:
				break more
			}
		}
		err := e.db.Update(func(tx *bolt.Tx) error {
			for _, r := range group {
				if err := r.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		for _, r := range group {
			r.done <- err
		}
	}
}

func (e *boltEngine) write(fn func(*bolt.Tx) error) error {
	switch e.mode {
	case boltBatch:
		return e.db.Batch(fn)
	case boltGroup:
		done := make(chan error, 1)
		e.reqs <- boltReq{fn: fn, done: done}
		return <-done
	default:
		return e.db.Update(fn)
	}
}

func (e *boltEngine) append(c int, seq uint64) error {
	return e.write(func(tx *bolt.Tx) error {
		bk := tx.Bucket(e.names[c])
		id := idKey(c, seq)
		if bk.Get(id) != nil {
			return errDup
		}
		if err := bk.Put(msgKey(c, seq), payload(seq)); err != nil {
			return err
		}
		return bk.Put(id, msgKey(c, seq))
	})
}

func (e *boltEngine) drain(c int, head uint64, n int) error {
	var keys [][]byte
	err := e.db.View(func(tx *bolt.Tx) error {
		qPrefix := append(clientPrefix(c), 'q')
		cur := tx.Bucket(e.names[c]).Cursor()
		for k, v := cur.Seek(msgKey(c, head)); bytes.HasPrefix(k, qPrefix) && len(keys) < n; k, v = cur.Next() {
			if len(v) != choicePayload {
				return fmt.Errorf("bad message %x", k)
			}
			keys = append(keys, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(keys) != n {
		return fmt.Errorf("client %d: read %d messages from %d, want %d", c, len(keys), head, n)
	}
	return e.write(func(tx *bolt.Tx) error {
		bk := tx.Bucket(e.names[c])
		for i, k := range keys {
			if err := bk.Delete(k); err != nil {
				return err
			}
			if err := bk.Delete(idKey(c, head+uint64(i))); err != nil {
				return err
			}
		}
		return nil
	})
}

func (e *boltEngine) preload(c int, count uint64) error {
	return e.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(e.names[c])
		for seq := range count {
			if err := bk.Put(msgKey(c, seq), payload(seq)); err != nil {
				return err
			}
			if err := bk.Put(idKey(c, seq), msgKey(c, seq)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (e *boltEngine) close() error {
	if e.mode == boltGroup {
		close(e.reqs)
		e.wg.Wait()
	}
	return e.db.Close()
}

type pebbleEngine struct{ db *pebble.DB }

func openPebble(b *testing.B, _ int) choiceEngine {
	db, err := pebble.Open(b.TempDir(), &pebble.Options{})
	if err != nil {
		b.Fatal(err)
	}
	e := &pebbleEngine{db: db}
	b.Cleanup(func() {
		if err := e.close(); err != nil {
			b.Error(err)
		}
	})
	return e
}

func (e *pebbleEngine) append(c int, seq uint64) error {
	// Pebble has no read-write transactions: the id check and the write are atomic only
	// because one goroutine owns each mailbox here (a store would lock the client).
	id := idKey(c, seq)
	_, closer, err := e.db.Get(id)
	switch {
	case err == nil:
		closer.Close()
		return errDup
	case !errors.Is(err, pebble.ErrNotFound):
		return err
	}
	batch := e.db.NewBatch()
	defer batch.Close()
	if err := batch.Set(msgKey(c, seq), payload(seq), nil); err != nil {
		return err
	}
	if err := batch.Set(id, msgKey(c, seq), nil); err != nil {
		return err
	}
	return e.db.Apply(batch, pebble.Sync)
}

func (e *pebbleEngine) drain(c int, head uint64, n int) error {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: msgKey(c, head), UpperBound: msgKey(c, 1<<63)})
	if err != nil {
		return err
	}
	var keys [][]byte
	for ok := it.First(); ok && len(keys) < n; ok = it.Next() {
		if len(it.Value()) != choicePayload {
			it.Close()
			return fmt.Errorf("bad message %x", it.Key())
		}
		keys = append(keys, bytes.Clone(it.Key()))
	}
	if err := it.Close(); err != nil {
		return err
	}
	if len(keys) != n {
		return fmt.Errorf("client %d: read %d messages from %d, want %d", c, len(keys), head, n)
	}
	batch := e.db.NewBatch()
	defer batch.Close()
	for i, k := range keys {
		if err := batch.Delete(k, nil); err != nil {
			return err
		}
		if err := batch.Delete(idKey(c, head+uint64(i)), nil); err != nil {
			return err
		}
	}
	return e.db.Apply(batch, pebble.Sync)
}

func (e *pebbleEngine) preload(c int, count uint64) error {
	batch := e.db.NewBatch()
	defer batch.Close()
	for seq := range count {
		if err := batch.Set(msgKey(c, seq), payload(seq), nil); err != nil {
			return err
		}
		if err := batch.Set(idKey(c, seq), msgKey(c, seq), nil); err != nil {
			return err
		}
	}
	return e.db.Apply(batch, pebble.NoSync)
}

func (e *pebbleEngine) close() error { return e.db.Close() }
