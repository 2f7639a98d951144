package node

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLogThrottleCountsOnlyLinesTheLoggerWrites: refusals below the logger's level are
// neither written nor reported as suppressed; above it, lines past the burst are counted and
// reported once, with the next line written.
func TestLogThrottleCountsOnlyLinesTheLoggerWrites(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l := newLogThrottle(0, 2) // no refill: the burst is all there is
	for range 100 {
		l.log(log, slog.LevelInfo, "access denied")
	}
	l.log(log, slog.LevelWarn, "authentication refused")
	if got := out.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "authentication refused") {
		t.Fatalf("after 100 lines below the level and one at it, the log holds:\n%s", got)
	}
	l.log(log, slog.LevelWarn, "authentication refused") // the second of the burst
	for range 5 {
		l.log(log, slog.LevelWarn, "authentication refused") // suppressed
	}
	if got := out.String(); strings.Count(got, "\n") != 2 || strings.Contains(got, "suppressed") {
		t.Fatalf("past the burst, the log holds:\n%s", got)
	}
	if l.suppressed != 5 {
		t.Fatalf("suppressed %d, want 5", l.suppressed)
	}
}
