package zkcoord_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/zkcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

var shared testenv.Shared

func TestMain(m *testing.M) { shared.MainLeakCheck(m) }

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// open connects a new client on servers under root.
func open(t *testing.T, servers []string, root string, timeout time.Duration) *zkcoord.Coordinator {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := zkcoord.New(ctx, zkcoord.Config{
		Servers: servers, Root: root, SessionTimeout: timeout, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatalf("zkcoord.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestBehaviour(t *testing.T) {
	e := shared.Ensemble(t)
	coordtest.Run(t, func(t *testing.T) func() coord.Coordinator {
		root := "/test-" + coordtest.Instance()
		return func() coord.Coordinator { return open(t, e.Addrs(), root, 2*time.Second) }
	})
}

func TestUnreachableEnsembleFailsFast(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	_, err := zkcoord.New(ctx, zkcoord.Config{
		Servers: []string{"127.0.0.1:1", "127.0.0.1:2"}, DialTimeout: 2 * time.Second, Logger: testLogger(t),
	})
	if err == nil {
		t.Fatal("New succeeded with no server listening")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1,127.0.0.1:2") {
		t.Fatalf("error %q does not name the servers tried", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("New took %v with DialTimeout 2s", d)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  zkcoord.Config
		want string
	}{
		{zkcoord.Config{}, "no servers"},
		{zkcoord.Config{Servers: []string{"localhost"}}, `"localhost"`},
		{zkcoord.Config{Servers: []string{"a:1"}, Root: "switchboard"}, `root "switchboard"`},
		{zkcoord.Config{Servers: []string{"a:1"}, SessionTimeout: time.Millisecond}, "too short"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %s", c.cfg, err, c.want)
		}
	}
}
