package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// go-redis writes its own lines (a pool that failed to dial, say: 50 in 8 s while Redis
// was down, from one router) with the standard library's log package, to stderr, past
// the process's handler and its --log-format: they broke JSON log pipelines. They go to
// the logger of the latest store opened instead, at debug: the store's own errors, and
// the lines of what it serves, say the same at the levels an operator reads.

// libraryLog is the logger go-redis's lines go to; nil discards them.
var libraryLog atomic.Pointer[slog.Logger]

func init() { redis.SetLogger(libraryLogger{}) }

// useLibraryLog sends go-redis's lines to log from now on (nil keeps the current one).
func useLibraryLog(log *slog.Logger) {
	if log != nil {
		libraryLog.Store(log)
	}
}

// libraryLogger is go-redis's logger (its internal.Logging).
type libraryLogger struct{}

func (libraryLogger) Printf(ctx context.Context, format string, v ...any) {
	log := libraryLog.Load()
	if log == nil || !log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	log.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), "source", "go-redis")
}
