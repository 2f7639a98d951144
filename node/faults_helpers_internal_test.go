package node

// Helpers for the fault tests that need the node's internals: each test gets a cluster of
// its own (see faultEnv).

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/embedded"
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

// faultEnv is one test's cluster: an in-memory coordinator cluster (each coord call is
// another process's client of it) and one embedded store that every node of the test
// shares, as they would share a Redis. The faults are injected by wrapping the store, so the
// backends themselves are incidental and need no server.
type faultEnv struct {
	cl *memcoord.Cluster
	st *embedded.Store
}

func newFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	return &faultEnv{cl: memcoord.NewCluster(), st: testenv.EmbeddedStore(t)}
}

func (e *faultEnv) coord(t *testing.T) *memcoord.Coordinator {
	t.Helper()
	return testenv.OpenMemCoord(t, e.cl)
}

// store returns the test's store (the same one at every call).
func (e *faultEnv) store(*testing.T) store.Store { return e.st }

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

func startFaultNode(t *testing.T, cfg Config, c Coordinator, st store.Store) *Node {
	t.Helper()
	n, err := Start(testenv.Context(t, 30*time.Second), cfg, Deps{Coord: c, Store: st, Logger: testenv.Logger(t)})
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
