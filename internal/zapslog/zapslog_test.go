package zapslog_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/switchboard-mqtt/switchboard/internal/zapslog"
)

// Errors and worse reach slog at the level asked for, with their fields and, for the
// entries after which zap panics or exits, zap's level; the rest at debug.
func TestLevelsAndFields(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	z := zapslog.New(log, slog.LevelError).With(zap.String("member", "m1"))
	z.Warn("retrying")
	z.Error("write failed", zap.String("path", "db"))
	z.DPanic("about to panic") // zap panics in development mode only
	out := buf.String()
	if strings.Contains(out, "retrying") {
		t.Errorf("a warning was logged above debug:\n%s", out)
	}
	for _, want := range []string{`level=ERROR msg="write failed" member=m1 path=db`, `level=ERROR msg="about to panic" zap_level=dpanic member=m1`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
