package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// ReserveFileName is the name, inside Config.Dir, of the file that holds the disk reserve.
const ReserveFileName = "switchboard.reserve"

// refillEvery is how often a refused Append tries to take the reserve back.
const refillEvery = time.Second

// reserve keeps Config.ReserveBytes of disk in hand, in a file of zeros beside the
// database. bbolt never writes a page in place: even a delete needs free disk for the
// pages it rewrites. When a commit fails for lack of disk, the reserve file is deleted,
// so that removals, disconnects and the sweeper can still delete, and Append is
// refused with store.ErrStoreFull until the reserve can be written again, as Redis with
// noeviction refuses writes but still serves deletes when out of memory.
type reserve struct {
	path string
	size int64
	log  *slog.Logger

	low atomic.Bool // the reserve is not held: Append is refused

	mu       sync.Mutex // serialises the file's writing and deleting
	lastTry  time.Time  // when a refused Append last tried to refill
	lastFail error      // why that refill failed
}

// errLowDisk is why Append is refused while the reserve is not held.
var errLowDisk = errors.New("free disk below the reserve; appends refused until space is freed")

// hold writes the reserve file unless it is already whole. Without disk for it, the
// store opens but refuses appends; any other failure is returned.
func (r *reserve) hold() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.fill()
	if isNoSpace(err) {
		r.lastTry, r.lastFail = time.Now(), err
		r.low.Store(true)
		r.log.Warn("embedded store: no disk for the reserve; appends are refused until space is freed",
			"file", r.path, "bytes", r.size, "err", err)
		return nil
	}
	return err
}

// fill writes the file to its size with zeros, so its blocks are allocated, and syncs it.
// A file it could not complete is removed: the disk it took is what the store lacks.
func (r *reserve) fill() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open reserve: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() >= r.size {
		return f.Close()
	}
	zeros := make([]byte, min(r.size, 1<<20))
	for off := int64(0); err == nil && off < r.size; off += int64(len(zeros)) {
		_, err = f.WriteAt(zeros[:min(int64(len(zeros)), r.size-off)], off)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(r.path)
		return fmt.Errorf("write reserve: %w", err)
	}
	return nil
}

// release deletes the reserve file after a commit failed for lack of disk, and refuses
// appends from then on.
func (r *reserve) release(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.low.Swap(true) {
		return
	}
	r.lastTry, r.lastFail = time.Now(), cause
	err := os.Remove(r.path)
	r.log.Warn("embedded store: disk full; released the reserve so deletes can proceed, appends are refused until space is freed",
		"file", r.path, "bytes", r.size, "remove_err", err)
}

// check returns nil if an append may go ahead. While the reserve is not held it tries,
// at most every refillEvery, to write it again, and otherwise returns an error that
// wraps store.ErrStoreFull.
func (r *reserve) check() error {
	if !r.low.Load() {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.low.Load() {
		return nil
	}
	if time.Since(r.lastTry) >= refillEvery {
		r.lastTry = time.Now()
		if r.lastFail = r.fill(); r.lastFail == nil {
			r.low.Store(false)
			r.log.Info("embedded store: disk space available again; appends accepted", "file", r.path)
			return nil
		}
	}
	return fmt.Errorf("%w: %w (%d bytes): %w", store.ErrStoreFull, errLowDisk, r.size, r.lastFail)
}
