// Package zapslog routes the zap logs of etcd's libraries (its client, and the server
// `switchboard up` embeds) into slog, so that what they say reaches the same handler, at
// the same level filter, as everything else.
package zapslog

import (
	"context"
	"log/slog"
	"maps"
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a zap logger that writes to log. etcd warns on every retry while a peer is
// unreachable, so entries below zap's error level are logged at debug; errors, and the
// fatal line etcd writes before it exits the process, at errorsAt.
func New(log *slog.Logger, errorsAt slog.Level) *zap.Logger {
	return zap.New(core{log: log, errorsAt: errorsAt})
}

type core struct {
	log      *slog.Logger
	errorsAt slog.Level
	fields   []zapcore.Field
}

func (c core) level(l zapcore.Level) slog.Level {
	if l >= zapcore.ErrorLevel {
		return c.errorsAt
	}
	return slog.LevelDebug
}

func (c core) Enabled(l zapcore.Level) bool {
	return c.log.Enabled(context.Background(), c.level(l))
}

func (c core) With(fields []zapcore.Field) zapcore.Core {
	c.fields = slices.Concat(c.fields, fields)
	return c
}

func (c core) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c core) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range slices.Concat(c.fields, fields) {
		f.AddTo(enc)
	}
	args := make([]any, 0, 2*len(enc.Fields)+2)
	if e.Level >= zapcore.DPanicLevel {
		args = append(args, "zap_level", e.Level.String()) // what comes next: a panic or the process's exit
	}
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		args = append(args, k, enc.Fields[k])
	}
	c.log.Log(context.Background(), c.level(e.Level), e.Message, args...)
	return nil
}

func (c core) Sync() error { return nil }
