package redisstore_test

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

var shared testenv.Shared

// clusters holds the package's shared Redis Cluster (see sharedCluster).
var clusters sharedServers

func TestMain(m *testing.M) {
	code := m.Run()
	clusters.stop()
	shared.Stop()
	os.Exit(code)
}

// randomPrefix gives each test its own key namespace on the shared server.
func randomPrefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

// testConfig is a config for the Redis at addr on a fresh namespace.
func testConfig(t testing.TB, addr string) redisstore.Config {
	cfg := redisstore.DefaultConfig()
	cfg.Addr = addr
	cfg.Prefix = randomPrefix()
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return cfg
}

// open opens a store on cfg and closes it when the test ends.
func open(t testing.TB, cfg redisstore.Config) *redisstore.Store {
	t.Helper()
	ctx, cancel := testContext(t, 10*time.Second)
	defer cancel()
	s, err := redisstore.New(ctx, cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBehaviour(t *testing.T) {
	addr := shared.Redis(t).Addr
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, testConfig(t, addr)) })
}

// testWriter sends log output to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func TestBehaviourCluster(t *testing.T) {
	c := sharedCluster(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, clusterConfig(t, c)) })
}
