package etcdcoord_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/etcdcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// suiteTTL is the lease TTL for the behaviour suite and the fault tests. DuplicateRefused
// waits 1.5 TTL, so it is short; but at etcd's floor of 2s, and even at 3s, a keepalive
// (sent every TTL/3 on the client's half-second tick) had too little slack on this 2-core
// machine under load with the race detector: leases expired under live members.
const suiteTTL = 4 * time.Second

// open connects a new coordinator with cfg and closes it when the test ends.
func open(t *testing.T, cfg etcdcoord.Config) *etcdcoord.Coordinator {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testenv.Logger(t)
	}
	c, err := etcdcoord.New(testenv.Context(t, 20*time.Second), cfg)
	if err != nil {
		t.Fatalf("etcdcoord.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openAt opens a coordinator on the shared server under root, with lease TTL ttl.
func openAt(t *testing.T, root string, ttl time.Duration) *etcdcoord.Coordinator {
	t.Helper()
	return open(t, etcdcoord.Config{Endpoints: []string{endpoint}, Settings: coord.Settings{Root: root, SessionTimeout: ttl}})
}

// openProxied is openAt through a proxy of its own, for the test to cut, with a DialTimeout
// of 5s.
func openProxied(t *testing.T, root string, ttl time.Duration) (*etcdcoord.Coordinator, *testenv.Proxy) {
	t.Helper()
	p := testenv.StartProxy(t, endpoint)
	return open(t, etcdcoord.Config{Endpoints: []string{p.Addr}, Settings: coord.Settings{Root: root, SessionTimeout: ttl, DialTimeout: 5 * time.Second}}), p
}

// client is a plain etcd client of the shared server, closed when the test ends.
func client(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func freshPrefix() string { return "/test-" + coordtest.Instance() }

func TestBehaviour(t *testing.T) {
	coordtest.Run(t, func(t *testing.T) func() coord.Coordinator {
		prefix := freshPrefix()
		return func() coord.Coordinator {
			return openAt(t, prefix, suiteTTL)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  etcdcoord.Config
		want string
	}{
		{etcdcoord.Config{}, "Endpoints is empty"},
		{etcdcoord.Config{Endpoints: []string{"localhost"}}, `"localhost"`},
		{etcdcoord.Config{Endpoints: []string{"ftp://a:1"}}, `"ftp://a:1"`},
		// The shared Settings are checked in coord; here only that they are, with etcd's floor.
		{etcdcoord.Config{Endpoints: []string{"a:1"}, Settings: coord.Settings{SessionTimeout: time.Second}}, "etcd: SessionTimeout 1s is too short (minimum 2s)"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %s", c.cfg, err, c.want)
		}
	}
	ok := etcdcoord.DefaultConfig()
	ok.Endpoints = []string{"127.0.0.1:2379", "http://[::1]:2379"}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(defaults) = %v", err)
	}
}

// TestGivenClient uses a client the caller owns: Close revokes the coordinator's leases but
// leaves the client open.
func TestGivenClient(t *testing.T) {
	ctx := testenv.Context(t, 20*time.Second)
	cli := client(t)
	prefix := freshPrefix()
	c := open(t, etcdcoord.Config{Client: cli, Settings: coord.Settings{Root: prefix, SessionTimeout: 5 * time.Second}})
	if got := c.SessionTTL(); got != 5*time.Second {
		t.Fatalf("SessionTTL = %v", got)
	}
	if _, err := c.Register(ctx, coordtest.NewMember("node-g")); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, prefix+"/nodes/node-g")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("member key = %+v, %v; want one key on a lease", resp, err)
	}
	c.Close()
	resp, err = cli.Get(ctx, prefix+"/nodes/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("given client unusable after Close: %v", err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("member left after Close: %s", resp.Kvs[0].Key)
	}
	if _, err := c.Register(ctx, coordtest.NewMember("node-h")); !errors.Is(err, coord.ErrClosed) {
		t.Fatalf("Register after Close: err = %v, want ErrClosed", err)
	}
}

// TestFenceCheckedByServer shows that a fenced write is checked by etcd, in the same
// transaction, against the leader key's create revision.
func TestFenceCheckedByServer(t *testing.T) {
	ctx := testenv.Context(t, 20*time.Second)
	c := openAt(t, freshPrefix(), suiteTTL)
	l, err := c.Campaign(ctx, "monitor", "mon-a")
	if err != nil {
		t.Fatal(err)
	}
	err = c.SetQuarantine(ctx, coord.Quarantine{Node: "n1", Reason: "stale fence"}, etcdcoord.StaleFence(l))
	if !errors.Is(err, coord.ErrNotLeader) {
		t.Fatalf("write with a stale fence: err = %v, want ErrNotLeader", err)
	}
	if err := c.SetQuarantine(ctx, coord.Quarantine{Node: "n1", Reason: "current fence"}, l); err != nil {
		t.Fatalf("write with the current fence: %v", err)
	}
	other := openAt(t, freshPrefix(), suiteTTL)
	if err := other.SetQuarantine(ctx, coord.Quarantine{Node: "n1"}, l); err == nil || errors.Is(err, coord.ErrNotLeader) {
		t.Fatalf("write fenced by another coordinator's leadership: err = %v, want a usage error", err)
	}
	qs, err := c.Quarantines(ctx)
	if err != nil || len(qs) != 1 || qs[0].Reason != "current fence" {
		t.Fatalf("quarantines = %+v, %v; want only the current fence's", qs, err)
	}
}

// TestStaleOwnEntryIsReplaced leaves an entry with this process's instance on another, still
// live lease (as a fenced registration leaves behind before its old lease expires): Register
// deletes it and registers under its own lease at once instead of refusing a duplicate.
func TestStaleOwnEntryIsReplaced(t *testing.T) {
	ctx := testenv.Context(t, 20*time.Second)
	cli := client(t)
	prefix := freshPrefix()
	m := coordtest.NewMember("node-s")
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	old, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Revoke(context.Background(), old.ID)
	put, err := cli.Put(ctx, prefix+"/nodes/node-s", string(data), clientv3.WithLease(old.ID))
	if err != nil {
		t.Fatal(err)
	}

	c := openAt(t, prefix, suiteTTL)
	start := time.Now()
	reg, err := c.Register(ctx, m)
	if err != nil {
		t.Fatalf("register over own stale entry: %v", err)
	}
	if d := time.Since(start); d > suiteTTL {
		t.Fatalf("register took %v: it waited instead of replacing its own stale entry", d)
	}
	st, _ := reg.Status()
	if st.State != coord.Registered || st.Epoch <= put.Header.Revision {
		t.Fatalf("status %+v, want registered with an epoch after %d", st, put.Header.Revision)
	}
	resp, err := cli.Get(ctx, prefix+"/nodes/node-s")
	if err != nil || len(resp.Kvs) != 1 || clientv3.LeaseID(resp.Kvs[0].Lease) == old.ID {
		t.Fatalf("entry = %+v, %v; want one entry on the registration's own lease", resp.Kvs, err)
	}
}
