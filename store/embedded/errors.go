package embedded

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/switchboard-mqtt/switchboard/store"
)

var (
	// ErrClosed means the store was closed; nothing was written. Errors that wrap it also
	// wrap store.ErrUnavailable.
	ErrClosed = errors.New("embedded store is closed")
	// ErrLocked means another process (or another Store in this one) has the directory
	// open. Open returns it at once rather than wait.
	ErrLocked = errors.New("in use by another process")
)

// errClosed is what an operation on a closed store returns.
var errClosed = fmt.Errorf("%w: %w", ErrClosed, store.ErrUnavailable)

// fail wraps an error of operation op: a full disk wraps store.ErrStoreFull and a closed
// store ErrClosed; both and anything else but a caller's cancelled context name the
// directory.
func (s *Store) fail(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrClosed):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return fmt.Errorf("%s: %w", op, errClosed)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case isNoSpace(err):
		return fmt.Errorf("%s: store in %q: %w: %w", op, s.dir, store.ErrStoreFull, err)
	default:
		return fmt.Errorf("%s: store in %q: %w", op, s.dir, err)
	}
}

// isNoSpace reports a write refused for lack of disk: ENOSPC, or EDQUOT for a user's quota.
// bbolt formats some errors (growing the file) with %s, which loses the errno, so the
// text is matched too.
func isNoSpace(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, syscall.ENOSPC.Error()) || strings.Contains(msg, syscall.EDQUOT.Error())
}
