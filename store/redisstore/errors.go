package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

// fail wraps a Redis error for op: a refused write for lack of memory wraps
// store.ErrStoreFull, and anything that means Redis cannot be reached or cannot serve
// writes right now wraps store.ErrUnavailable. Both name the server.
func (s *Store) fail(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case isOOM(err):
		return fmt.Errorf("%s: redis %s: %w: %w", op, s.where, store.ErrStoreFull, err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", op, err)
	case isUnavailable(err):
		return fmt.Errorf("%s: redis %s: %w: %w", op, s.where, store.ErrUnavailable, err)
	default:
		return fmt.Errorf("%s: redis %s: %w", op, s.where, err)
	}
}

// isOOM reports a write refused under maxmemory-policy noeviction. A script passes on the
// error of the command that failed inside it, so the text is matched too.
func isOOM(err error) bool {
	return err != nil && (redis.IsOOMError(err) || strings.Contains(err.Error(), "OOM command not allowed"))
}

// isUnavailable reports errors that say nothing about the request and everything about
// the server being out of reach: network errors, timeouts, a closed client, and a server
// that is loading its data, a read-only replica, or a primary that lost its replicas.
func isUnavailable(err error) bool {
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, redis.ErrClosed),
		errors.Is(err, errOutOfReach),
		errors.Is(err, errNotDurable),
		errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, redis.ErrPoolExhausted),
		redis.IsLoadingError(err),
		redis.IsReadOnlyError(err),
		redis.IsMasterDownError(err),
		redis.IsClusterDownError(err),
		redis.IsTryAgainError(err),
		isOrder(err),
		redis.IsMaxClientsError(err),
		redis.IsNoReplicasError(err):
		return true
	}
	return false
}
