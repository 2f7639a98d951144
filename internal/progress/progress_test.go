package progress_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/progress"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestLineSetStop: Set draws its text over the line at once, Stop erases it, and nothing is
// drawn after Stop.
func TestLineSetStop(t *testing.T) {
	var out testenv.Buffer
	l := progress.Start(&out, time.Hour, nil)
	l.Set("starting %s", "node-1")
	if got := out.String(); !strings.HasPrefix(got, "\r\033[Kstarting node-1 (") || !strings.HasSuffix(got, "s)") {
		t.Fatalf("after Set: %q", got)
	}
	l.Stop()
	l.Stop() // idempotent
	if got := out.String(); !strings.HasSuffix(got, "s)\r\033[K") {
		t.Fatalf("Stop did not clear the line: %q", got)
	}
	before := out.String()
	l.Set("late")
	if out.String() != before {
		t.Fatalf("Set after Stop drew: %q", out.String())
	}
}

// TestLineTicks: a status function is redrawn every interval.
func TestLineTicks(t *testing.T) {
	var out testenv.Buffer
	l := progress.Start(&out, 5*time.Millisecond, func(el time.Duration) string { return "tick" })
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(out.String(), "tick") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 3 redraws: %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.Stop()
}

// TestLineInterleave: output written beside the line clears it first and redraws it after,
// so log lines are never drawn over; after Stop it passes straight through.
func TestLineInterleave(t *testing.T) {
	var out testenv.Buffer
	l := progress.Start(&out, time.Hour, func(time.Duration) string { return "working" })
	log := l.Interleave(&out)
	l.Set("x")
	if _, err := log.Write([]byte("a log line\n")); err != nil {
		t.Fatal(err)
	}
	want := "\r\033[Kworking" + "\r\033[K" + "a log line\n" + "\r\033[Kworking"
	if got := out.String(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	l.Stop()
	_, _ = log.Write([]byte("after\n"))
	if got := out.String(); !strings.HasSuffix(got, "working\r\033[Kafter\n") {
		t.Fatalf("after Stop: %q", got)
	}
}

// TestNilWriter: a line without a writer does nothing and Interleave returns the writer
// it is given.
func TestNilWriter(t *testing.T) {
	l := progress.Start(nil, time.Millisecond, nil)
	l.Set("nothing")
	var out bytes.Buffer
	if w := l.Interleave(&out); w != &out {
		t.Fatal("Interleave on a nil line wrapped the writer")
	}
	l.Stop()
}

// TestIsTerminal: a buffer or a pipe is not a terminal.
func TestIsTerminal(t *testing.T) {
	if progress.IsTerminal(&bytes.Buffer{}) {
		t.Fatal("a buffer is a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if progress.IsTerminal(w) {
		t.Fatal("a pipe is a terminal")
	}
}
