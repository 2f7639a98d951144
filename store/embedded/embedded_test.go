package embedded_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/embedded"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// TestMain fails the package if any test leaves a goroutine behind: every Store must stop
// its committer and sweeper on Close. Run as the helper process of
// TestLockAcrossProcesses, it runs that helper instead of the tests.
func TestMain(m *testing.M) {
	if dir := os.Getenv(lockHelperDir); dir != "" {
		os.Exit(lockHelper(dir))
	}
	goleak.VerifyTestMain(m)
}

func TestBehaviour(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, testConfig(t, t.TempDir())) })
}

// testConfig is a config for a store in dir that logs warnings to the test's log.
func testConfig(t testing.TB, dir string) embedded.Config {
	cfg := embedded.DefaultConfig()
	cfg.Dir = dir
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return cfg
}

// open opens a store on cfg and closes it when the test ends.
func open(t testing.TB, cfg embedded.Config) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(testContext(t), cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// testContext returns a context that ends with the test or after ten seconds.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testWriter sends log output to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
