package zkcoord_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/zkcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

var shared testenv.Shared

func TestMain(m *testing.M) { shared.MainLeakCheck(m) }

// open connects a new client on servers under root, closed when the test ends; edit, if
// given, changes its Config first.
func open(t *testing.T, servers []string, root string, timeout time.Duration, edit ...func(*zkcoord.Config)) *zkcoord.Coordinator {
	t.Helper()
	cfg := zkcoord.Config{Servers: servers, Settings: coord.Settings{Root: root, SessionTimeout: timeout, Logger: testenv.Logger(t)}}
	for _, f := range edit {
		f(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := zkcoord.New(ctx, cfg)
	if err != nil {
		t.Fatalf("zkcoord.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// register registers id on c and returns the registration with its first status.
func register(ctx context.Context, t *testing.T, c coord.Registrar, id string) (coord.Registration, coord.Status) {
	t.Helper()
	reg, err := c.Register(ctx, coordtest.NewMember(id))
	if err != nil {
		t.Fatalf("Register %s: %v", id, err)
	}
	st, _ := reg.Status()
	return reg, st
}

func TestBehaviour(t *testing.T) {
	e := shared.Ensemble(t)
	coordtest.Run(t, func(t *testing.T) func() coord.Coordinator {
		root := "/test-" + coordtest.Instance()
		return func() coord.Coordinator { return open(t, e.Addrs(), root, 2*time.Second) }
	})
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  zkcoord.Config
		want string
	}{
		{zkcoord.Config{}, "no servers"},
		{zkcoord.Config{Servers: []string{"localhost"}}, `"localhost"`},
		// The shared Settings are checked in coord; here only that they are, with zk's floor.
		{zkcoord.Config{Servers: []string{"a:1"}, Settings: coord.Settings{SessionTimeout: time.Millisecond}}, "zk: SessionTimeout 1ms is too short (minimum 500ms)"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %s", c.cfg, err, c.want)
		}
	}
}

// TestDigestAuth: with --zk-auth, what the coordinator creates is writable only with the
// same credentials and readable by anyone.
func TestDigestAuth(t *testing.T) {
	e := shared.Ensemble(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root := "/auth-" + coordtest.Instance()
	owner := open(t, e.Addrs(), root, 2*time.Second, func(c *zkcoord.Config) { c.Auth = "switchboard:s3cret" })
	register(ctx, t, owner, "node-1")
	if err := owner.SetQuarantine(ctx, coord.Quarantine{Node: "node-0", Reason: "owner may"}, nil); err != nil {
		t.Fatalf("owner's write: %v", err)
	}
	stranger := open(t, e.Addrs(), root, 2*time.Second)
	ms, err := stranger.Members(ctx)
	if err != nil || len(ms) != 1 {
		t.Fatalf("reading without credentials: %v %v", ms, err)
	}
	if err := stranger.SetQuarantine(ctx, coord.Quarantine{Node: "node-1", Reason: "stranger"}, nil); err == nil {
		t.Fatal("a client without the credentials wrote a quarantine mark")
	}
	if err := stranger.Release(ctx, "node-0"); err == nil {
		t.Fatal("a client without the credentials released a quarantine")
	}
	if err := (zkcoord.Config{Servers: []string{"a:1"}, Auth: "nopassword"}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "user:password") {
		t.Fatalf("Validate of a bad auth = %v", err)
	}
}

// dropsFirstRequest is a net.Conn whose first connection closes itself at the first request
// after the session handshake: a server that restarts just after giving a client a session.
type dropsFirstRequest struct {
	net.Conn
	writes int
}

func (c *dropsFirstRequest) Write(b []byte) (int, error) {
	if c.writes++; c.writes == 2 {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	return c.Conn.Write(b)
}

// TestNewRidesOutALinkDroppedWhileItCreatesItsDirectories: the connection drops right
// after the session is established, as New creates its directories. New retries within its
// DialTimeout, as it waits for a session, instead of failing the process's start.
func TestNewRidesOutALinkDroppedWhileItCreatesItsDirectories(t *testing.T) {
	e := shared.Ensemble(t)
	var dials atomic.Int32
	dial := func(network, address string, timeout time.Duration) (net.Conn, error) {
		conn, err := net.DialTimeout(network, address, timeout)
		if err != nil || dials.Add(1) > 1 {
			return conn, err
		}
		return &dropsFirstRequest{Conn: conn}, nil
	}
	ctx := testenv.Context(t, 30*time.Second)
	c, err := zkcoord.New(ctx, zkcoord.Config{Servers: e.Addrs(), Dial: dial,
		Settings: coord.Settings{Root: "/drop-" + coordtest.Instance(), SessionTimeout: 2 * time.Second, Logger: testenv.Logger(t)}})
	if err != nil {
		t.Fatalf("New failed on one dropped connection (%d dials): %v", dials.Load(), err)
	}
	defer c.Close()
	if dials.Load() < 2 {
		t.Fatalf("%d dials: the first connection was not dropped; the test proves nothing", dials.Load())
	}
	if _, err := c.Register(ctx, coordtest.NewMember("node-1")); err != nil {
		t.Fatalf("Register after the reconnect: %v", err)
	}
}
