package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store/embedded"
)

// lockHelperDir names the directory lockHelper opens when the test binary runs as the
// second process of TestLockAcrossProcesses.
const lockHelperDir = "EMBEDDED_LOCK_HELPER_DIR"

// checkLockedError checks that err is the quick, clear refusal of a directory in use.
func checkLockedError(t *testing.T, err error, dir string) {
	t.Helper()
	if err == nil {
		t.Fatal("second open of a directory in use succeeded")
	}
	if !errors.Is(err, embedded.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "in use by another process") {
		t.Fatalf("second open: %q does not name the directory and say it is in use", msg)
	}
}

func TestLockInProcess(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	first, err := embedded.Open(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	second, err := embedded.Open(testContext(t), cfg)
	if err == nil {
		second.Close()
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second open took %v: it must fail at once", d)
	}
	checkLockedError(t, err, dir)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := open(t, cfg).Ping(testContext(t)); err != nil {
		t.Fatalf("ping after reopening a released directory: %v", err)
	}
}

func TestLockAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	first := open(t, testConfig(t, dir))
	cmd := exec.CommandContext(testContext(t), os.Args[0])
	cmd.Env = append(os.Environ(), lockHelperDir+"="+dir)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the other process took %v to fail", d)
	}
	if o := string(out); !strings.Contains(o, "open refused: ") || !strings.Contains(o, dir) ||
		!strings.Contains(o, "in use by another process") {
		t.Fatalf("helper process did not report a refused open naming the directory:\n%s", out)
	}
	if err := first.Ping(testContext(t)); err != nil {
		t.Fatalf("first store after the refused open: %v", err)
	}
}

// lockHelper is the second process of TestLockAcrossProcesses, which TestMain runs
// instead of the tests when lockHelperDir is set: it opens dir, which the first process
// holds, prints the refusal and reports whether it was the expected one.
func lockHelper(dir string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := embedded.DefaultConfig()
	cfg.Dir = dir
	s, err := embedded.Open(ctx, cfg)
	if err == nil {
		s.Close()
		fmt.Println("second open of a directory in use succeeded")
		return 1
	}
	fmt.Println("open refused:", err)
	if !errors.Is(err, embedded.ErrLocked) {
		fmt.Println("the refusal does not wrap ErrLocked")
		return 1
	}
	return 0
}
