package embedded

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/switchboard-mqtt/switchboard/store"
)

// FileName is the name of the store's file inside Config.Dir.
const FileName = "switchboard.db"

// Store is a store.Store in one bbolt file. It is safe for concurrent use. It owns two
// goroutines, the committer and the expiry sweeper, which Close stops.
type Store struct {
	db       *bolt.DB
	dir      string // for error messages
	log      *slog.Logger
	maxGroup int
	reserve  *reserve
	notices  *notices
	rwake    receiptWake // readers of the receipt log waiting for more

	writes  chan *write
	closing chan struct{} // closed by Close: the goroutines stop
	closed  atomic.Bool
	wg      sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens the store in cfg.Dir, creating the directory and the file if they are
// missing, and returns once it is ready. It takes an exclusive lock on the file: while one
// Store has the directory open, Open of the same directory, by this process or another,
// fails within cfg.LockTimeout with an error that names the directory and wraps ErrLocked.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open embedded store: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, openError(cfg.Dir, "create directory", err)
	}
	db, err := bolt.Open(filepath.Join(cfg.Dir, FileName), 0o600, &bolt.Options{
		Timeout: cfg.LockTimeout,
		// The hashmap freelist finds free pages in constant time; the default array
		// slows down as a large file fragments.
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return nil, openError(cfg.Dir, "open", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, openError(cfg.Dir, "prepare", err)
	}
	r := &reserve{path: filepath.Join(cfg.Dir, ReserveFileName), size: cfg.ReserveBytes, log: cfg.Logger}
	if err := r.hold(); err != nil {
		db.Close()
		return nil, openError(cfg.Dir, "reserve disk", err)
	}
	s := &Store{
		db:       db,
		dir:      cfg.Dir,
		log:      cfg.Logger,
		maxGroup: cfg.MaxGroup,
		reserve:  r,
		notices:  newNotices(),
		writes:   make(chan *write),
		closing:  make(chan struct{}),
	}
	s.wg.Go(s.commitLoop)
	s.wg.Go(func() { s.sweepLoop(cfg.SweepInterval) })
	return s, nil
}

// openError explains why Open failed on dir.
func openError(dir, step string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("open embedded store: directory %q is %w (or by another Store in this process)", dir, ErrLocked)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("open embedded store: directory %q is not writable: %w", dir, err)
	case isNoSpace(err):
		return fmt.Errorf("open embedded store in directory %q: %s: %w: %w", dir, step, store.ErrStoreFull, err)
	}
	return fmt.Errorf("open embedded store in directory %q: %s: %w", dir, step, err)
}

// Dir returns the directory the store is in.
func (s *Store) Dir() string { return s.dir }

// Ping checks that the store is open and its file readable.
func (s *Store) Ping(ctx context.Context) error {
	err := s.view(ctx, func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%w: bucket %s missing", errCorrupt, b)
			}
		}
		return nil
	})
	return s.fail("ping", err)
}

// Close stops the sweeper and the committer, after the commit in progress, and closes the
// file, which releases the directory's lock. Every write whose call returned is on disk.
// Calls after Close fail with ErrClosed. Idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.closing)
		s.wg.Wait()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close embedded store in %q: %w", s.dir, err)
		}
	})
	return s.closeErr
}
