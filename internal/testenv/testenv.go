// Package testenv gives integration tests the real servers they run against (a 3-server
// ZooKeeper ensemble and a Redis server from internal/backends), the switchboard binary built
// from this tree, and deadline polling in place of sleeps.
package testenv

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
)

// Ensemble starts a 3-server ZooKeeper ensemble on free loopback ports for this test and
// stops it when the test ends.
func Ensemble(t testing.TB) *backends.Ensemble {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := backends.StartEnsemble(ctx, backends.EnsembleConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start ZooKeeper ensemble: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// Redis starts a Redis server on a free loopback port for this test and stops it when the
// test ends.
func Redis(t testing.TB) *backends.Redis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := backends.StartRedis(ctx, backends.RedisConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start Redis: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds ./cmd/switchboard once per test process and returns the executable's path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchboard-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "switchboard")
		// Tests build with the failpoints tag: they inject faults no outside signal can.
		// SWITCHBOARD_TEST_RACE=1 builds it with the race detector; a process that reports
		// a race then fails its test (see StartProc).
		args := []string{"build", "-tags", "failpoints", "-o", buildPath}
		if os.Getenv("SWITCHBOARD_TEST_RACE") != "" {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/switchboard")...)
		cmd.Dir = ModuleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/switchboard: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// ModuleRoot is the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate source")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Eventually polls f every step until it returns nil or total has passed, then fails the
// test with f's last error. It is for conditions no event announces; where an event can be
// awaited, await it.
func Eventually(t testing.TB, total, step time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", total, err)
		}
		time.Sleep(step)
	}
}

// Shared holds servers that every test of a package may use: started on first use and
// stopped by Stop, which TestMain calls after m.Run. Tests that inject faults into servers
// start their own instead.
type Shared struct {
	mu       sync.Mutex
	dir      string
	ensemble *backends.Ensemble
	redis    *backends.Redis
	stops    []func()
}

func (s *Shared) tempDir(t testing.TB) string {
	if s.dir == "" {
		d, err := os.MkdirTemp("", "switchboard-test-")
		if err != nil {
			t.Fatal(err)
		}
		s.dir = d
	}
	return s.dir
}

// Ensemble returns the package's shared ensemble.
func (s *Shared) Ensemble(t testing.TB) *backends.Ensemble {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ensemble == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		e, err := backends.StartEnsemble(ctx, backends.EnsembleConfig{Dir: filepath.Join(s.tempDir(t), "zk")})
		if err != nil {
			t.Fatalf("start ZooKeeper ensemble: %v", err)
		}
		s.ensemble = e
		s.stops = append(s.stops, func() { e.Close() })
	}
	return s.ensemble
}

// Redis returns the package's shared Redis.
func (s *Shared) Redis(t testing.TB) *backends.Redis {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.redis == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		r, err := backends.StartRedis(ctx, backends.RedisConfig{Dir: filepath.Join(s.tempDir(t), "redis")})
		if err != nil {
			t.Fatalf("start Redis: %v", err)
		}
		s.redis = r
		s.stops = append(s.stops, func() { r.Close() })
	}
	return s.redis
}

// Stop stops every shared server and removes their files.
func (s *Shared) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.stops = nil
	s.ensemble, s.redis = nil, nil
	if s.dir != "" {
		os.RemoveAll(s.dir)
		s.dir = ""
	}
}

// Main runs a package's tests and stops its shared servers afterwards.
func (s *Shared) Main(m *testing.M) {
	code := m.Run()
	s.Stop()
	os.Exit(code)
}

// MainLeakCheck is Main followed by a goroutine-leak check (go.uber.org/goleak) once every
// test passed and the shared servers are stopped.
func (s *Shared) MainLeakCheck(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	s.Stop()
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "goroutine leak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// WaitingTests lets n (or GOMAXPROCS, if more) of a package's parallel tests run at once
// unless the command line says otherwise (-parallel, whose default is GOMAXPROCS). It is for packages whose tests
// spend their time waiting (leases, keep-alives, timeouts of servers that do not answer),
// not computing: run two at a time on a 2-core machine, they would leave it idle. It
// changes nothing when fuzzing, where -parallel is the number of fuzzing processes. Call
// it from TestMain, before m.Run.
func WaitingTests(n int) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if fuzz := flag.Lookup("test.fuzz"); set || fuzz != nil && fuzz.Value.String() != "" {
		return
	}
	if err := flag.Set("test.parallel", strconv.Itoa(max(n, runtime.GOMAXPROCS(0)))); err != nil {
		panic(err) // the testing package defines the flag
	}
}

// Logger is a test's logger: the test's output in verbose runs (-v); otherwise the last
// logTail lines are kept and printed only if the test fails, so that a failure seen once
// (in CI, say) comes with what the code said before it.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	tl := &tailLog{}
	if v, loaded := tails.LoadOrStore(t, tl); loaded {
		tl = v.(*tailLog) // the test's other loggers write to the same tail, in order
	} else {
		t.Cleanup(func() {
			tails.Delete(t)
			if t.Failed() {
				t.Logf("the last %d log lines:\n%s", logTail, tl.String())
			}
		})
	}
	return slog.New(slog.NewTextHandler(tl, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tails holds each running test's tailLog, by its testing.TB.
var tails sync.Map

// logTail is how many log lines a failed test prints.
const logTail = 300

// tailLog keeps the last logTail lines written to it. slog's handlers write one record per
// Write.
type tailLog struct {
	mu    sync.Mutex
	lines []string
	next  int // where the next line goes once lines is full
}

func (l *tailLog) Write(p []byte) (int, error) {
	line := string(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < logTail {
		l.lines = append(l.lines, line)
	} else {
		l.lines[l.next] = line
		l.next = (l.next + 1) % logTail
	}
	return len(p), nil
}

func (l *tailLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines[l.next:], "") + strings.Join(l.lines[:l.next], "")
}

// Context returns a context that ends after d or when the test ends.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
