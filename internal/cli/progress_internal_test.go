package cli

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// TestProgressOnlyOnATerminal: a long-running command's status line is drawn only on a
// terminal: never into a buffer or a pipe, and never in --json mode (bench included).
func TestProgressOnlyOnATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, stderr := range []io.Writer{&bytes.Buffer{}, w} {
		for _, asJSON := range []bool{false, true} {
			l := startProgress(env{stdout: io.Discard, stderr: stderr}, asJSON)
			l.Set("working")
			if got := l.Interleave(stderr); got != stderr {
				t.Errorf("%T, json %v: a line is drawn", stderr, asJSON)
			}
			l.Stop()
		}
	}
	o := benchOutput{asJSON: true, progress: "auto"}
	if pw, err := o.progressWriter(env{stderr: w}); err != nil || pw != nil {
		t.Fatalf("bench --json: progress to %v (%v)", pw, err)
	}
}
