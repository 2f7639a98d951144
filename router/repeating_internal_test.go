package router

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestRepeatingFailuresLogOnce: a run of failures of a retried step writes one WARN (the
// rest at debug), and its end one INFO; a new run warns again.
func TestRepeatingFailuresLogOnce(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := repeating{what: "sweep receipts"}
	down := errors.New("store unavailable")
	for range 5 {
		r.fail(log, down)
	}
	r.ok(log)
	r.ok(log)
	r.fail(log, down)
	got := buf.String()
	if n := strings.Count(got, "level=WARN"); n != 2 {
		t.Errorf("%d WARN lines for two runs of failures, want 2:\n%s", n, got)
	}
	if n := strings.Count(got, "level=INFO"); n != 1 || !strings.Contains(got, "works again") || !strings.Contains(got, "failures=5") {
		t.Errorf("want one INFO line saying it works again after 5 failures:\n%s", got)
	}
}
