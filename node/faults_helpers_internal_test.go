package node

// Helpers for the fault tests that need the node's internals: each test gets its own
// ZooKeeper ensemble and Redis (the package's shared ones live in package node_test).

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/zkcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
)

// faultStore is a store whose notice takes can be made to fail, as when the node cannot
// reach Redis (everything else still works, so the test can play the other nodes).
type faultStore struct {
	store.Store
	failTakes atomic.Bool
}

func (s *faultStore) TakeNotices(ctx context.Context, node string, max int) ([]store.Notice, error) {
	if s.failTakes.Load() {
		return nil, store.ErrUnavailable
	}
	return s.Store.TakeNotices(ctx, node, max)
}

type faultEnv struct {
	zk    []string
	redis string
	root  string
	pfx   string
}

func newFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	return &faultEnv{
		zk: testenv.Ensemble(t).Addrs(), redis: testenv.Redis(t).Addr,
		root: "/fault-" + coordtest.Instance(), pfx: "fl-" + coordtest.Instance(),
	}
}

func (e *faultEnv) coord(t *testing.T) *zkcoord.Coordinator {
	t.Helper()
	c, err := zkcoord.New(testenv.Context(t, 20*time.Second), zkcoord.Config{
		Servers: e.zk, Root: e.root, SessionTimeout: 2 * time.Second, Logger: testenv.Logger(t),
	})
	if err != nil {
		t.Fatalf("zkcoord.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (e *faultEnv) store(t *testing.T) *redisstore.Store {
	t.Helper()
	rc := redisstore.DefaultConfig()
	rc.Addr = e.redis
	rc.Prefix = e.pfx
	st, err := redisstore.New(testenv.Context(t, 10*time.Second), rc)
	if err != nil {
		t.Fatalf("redisstore.New: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func faultConfig(t *testing.T, id string) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ID = id
	cfg.MQTTAddr, cfg.InternalAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Health.Interval = 100 * time.Millisecond
	a, err := auth.New(auth.Config{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Auth = a
	return cfg
}

func startFaultNode(t *testing.T, cfg Config, c *zkcoord.Coordinator, st store.Store) *Node {
	t.Helper()
	n, err := Start(testenv.Context(t, 30*time.Second), cfg, c, st, testenv.Logger(t))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

// waitFor polls cond every 5ms for at most d.
func faultWaitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
