package embedded

import (
	"context"
	"fmt"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// A write is one operation's transaction body, waiting for the committer. Its state moves
// from waiting to either taken (the committer will run it) or abandoned (its caller gave
// up first; it never runs), so a caller whose context ends before its turn knows that
// nothing was written.
type write struct {
	fn    func(*bolt.Tx) error
	state atomic.Int32
	done  chan error // buffered: the committer never blocks on a caller
}

const (
	writeWaiting int32 = iota
	writeTaken
	writeAbandoned
)

// update runs fn in a write transaction and returns once that transaction is durable.
// Writes that wait at the same time share one transaction and one fsync (group commit):
// while one commit syncs, the next group gathers.
//
// fn must be safe to run more than once, setting its results afresh on each run: when one
// write in a group fails, the whole transaction rolls back, the failed write gets its
// error and the others run again without it. fn returns an error only for failures
// (corrupt data, a key bbolt refuses), never for an outcome such as "not the owner": a
// failure costs the group a second transaction.
//
// If ctx ends before the committer took the write, nothing is written. If it ends later,
// update returns at once and the write may still commit, as with a store that timed out.
func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.live(ctx); err != nil {
		return err
	}
	w := &write{fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- w:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return errClosed
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		if w.state.CompareAndSwap(writeWaiting, writeAbandoned) {
			return ctx.Err()
		}
		return fmt.Errorf("%w; the write may still commit", ctx.Err())
	}
}

// view runs fn in a read transaction, which sees every write whose update returned.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.live(ctx); err != nil {
		return err
	}
	return s.db.View(fn)
}

// commitLoop is the committer: it runs the writes that arrive, as many as are waiting
// (up to maxGroup) in each transaction, until the store closes. Close waits for it, so a
// write it has taken always finishes before the database closes.
func (s *Store) commitLoop() {
	group := make([]*write, 0, s.maxGroup)
	for {
		select {
		case w := <-s.writes:
			group = append(group[:0], w)
		case <-s.closing:
			return
		}
	gather:
		for len(group) < s.maxGroup {
			select {
			case w := <-s.writes:
				group = append(group, w)
			default:
				break gather
			}
		}
		s.commit(group)
	}
}

// commit runs group in one transaction and reports each write's outcome. It reuses
// group's array.
func (s *Store) commit(group []*write) {
	live := group[:0]
	for _, w := range group {
		if w.state.CompareAndSwap(writeWaiting, writeTaken) {
			live = append(live, w)
		}
	}
	for len(live) > 0 {
		failed, failErr := -1, error(nil)
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, w := range live {
				if err := runWrite(w.fn, tx); err != nil {
					failed, failErr = i, err
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			// Committed, or the commit failed (a full disk): the same for everyone.
			if err != nil && isNoSpace(err) {
				s.reserve.release(err)
			}
			for _, w := range live {
				w.done <- err
			}
			return
		}
		live[failed].done <- failErr
		live = append(live[:failed], live[failed+1:]...)
	}
}

// runWrite runs fn, turning a panic into an error so one bad write cannot kill the
// committer, and with it the store.
func runWrite(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in write: %v", r)
		}
	}()
	return fn(tx)
}
