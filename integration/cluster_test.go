// Package integration runs the real switchboard binary — nodes, routers — against a real
// 3-server ZooKeeper ensemble and a real Redis, and injects faults for real: kill -9,
// SIGTERM, SIGSTOP, stopping ZooKeeper servers and Redis.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/zkcoord"
	"github.com/switchboard-mqtt/switchboard/healthz"
	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

var shared testenv.Shared

func TestMain(m *testing.M) { shared.Main(m) }

// sessionTimeout is the nodes' ZooKeeper session timeout in these tests.
const sessionTimeout = 2 * time.Second

// cluster is one test's view of a Switchboard cluster: its backends and an observer
// client on the same ZooKeeper root.
type cluster struct {
	t     *testing.T
	zk    string
	redis string
	// redisArgs, when set, name the store instead of --redis (--redis-sentinels ...,
	// --redis-cluster ...).
	redisArgs []string
	root      string
	obs       *zkcoord.Coordinator
	watch     <-chan []coord.Member
	last      []coord.Member
}

// newCluster uses the package's shared ensemble and Redis under a fresh root and prefix.
func newCluster(t *testing.T) *cluster {
	e := shared.Ensemble(t)
	r := shared.Redis(t)
	return newClusterOn(t, e.ConnectString(), r.Addr)
}

func newClusterOn(t *testing.T, zk, redis string) *cluster {
	t.Helper()
	c := &cluster{t: t, zk: zk, redis: redis, root: "/it-" + coordtest.Instance()}
	ctx := context.Background()
	obs, err := zkcoord.New(ctx, zkcoord.Config{Servers: strings.Split(zk, ","),
		Settings: coord.Settings{Root: c.root, SessionTimeout: sessionTimeout, Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { obs.Close() })
	c.obs = obs
	wctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if c.watch, err = obs.WatchMembers(wctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// baseArgs are the flags every process of this cluster takes.
func (c *cluster) baseArgs() []string {
	redis := []string{"--redis", c.redis}
	if len(c.redisArgs) > 0 {
		redis = c.redisArgs
	}
	return append([]string{"--zk", c.zk, "--zk-root", c.root, "--redis-prefix", "sb" + c.root[4:12],
		"--session-timeout", sessionTimeout.String()}, redis...)
}

// nodeProc is a node process with the registration it made.
type nodeProc struct {
	*testenv.Proc
	id     string
	member coord.Member
	ws     string // its --ws address, when the test gave one
}

// startNode runs `switchboard node` and waits until it is in the live set.
func (c *cluster) startNode(id string, extra ...string) *nodeProc {
	c.t.Helper()
	p := testenv.StartProc(c.t, id, c.nodeArgs(id, extra...)...)
	m := c.waitMember(id, 30*time.Second, func(m coord.Member, ok bool) bool { return ok })
	c.waitReady(m)
	return &nodeProc{Proc: p, id: id, member: m}
}

// nodeArgs are the arguments of a node process of this cluster on free ports, then extra
// (a flag given again there wins).
func (c *cluster) nodeArgs(id string, extra ...string) []string {
	args := append([]string{"node", "--id", id, "--allow-anonymous", "--mqtt", "127.0.0.1:0", "--internal", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--data-dir", c.t.TempDir()}, c.baseArgs()...)
	return append(args, extra...)
}

// waitReady waits until a registered node is open: registered is not yet open, so tests
// wait for the readiness a load balancer would see.
func (c *cluster) waitReady(m coord.Member) {
	c.t.Helper()
	testenv.Eventually(c.t, 10*time.Second, 20*time.Millisecond, func() error {
		status, h, err := health(m.AdminAddr)
		if err != nil || status != 200 {
			return fmt.Errorf("healthz %d %+v %v", status, h, err)
		}
		return nil
	})
}

// waitMember reads the live set until cond holds for id.
func (c *cluster) waitMember(id string, d time.Duration, cond func(coord.Member, bool) bool) coord.Member {
	c.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		m, ok := coordtest.Find(c.last, id)
		if cond(m, ok) {
			return m
		}
		select {
		case set := <-c.watch:
			c.last = set
		case <-deadline.C:
			c.t.Fatalf("live set %v: condition on %s not met within %v", coordtest.IDs(c.last), id, d)
		}
	}
}

// health fetches a node's /healthz.
func health(adminAddr string) (int, healthz.Report, error) {
	var h healthz.Report
	resp, err := http.Get("http://" + adminAddr + "/healthz")
	if err != nil {
		return 0, h, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &h); err != nil {
		return resp.StatusCode, h, fmt.Errorf("healthz body %q: %w", b, err)
	}
	return resp.StatusCode, h, nil
}

// metric reads one sample's value from a /metrics page (0 if absent).
func metric(adminAddr, sample string) (float64, error) {
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, sample+" ") {
			var v float64
			_, err := fmt.Sscanf(strings.TrimPrefix(line, sample+" "), "%g", &v)
			return v, err
		}
	}
	return 0, nil
}

func init() {
	// The nodes log to their own files; keep the test binary quiet.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// routerProc is a running router process and its API base URL.
type routerProc struct {
	*testenv.Proc
	url string
}

// startRouter runs `switchboard router` on a free port and waits until it is healthy.
func (c *cluster) startRouter(name string, extra ...string) *routerProc {
	c.t.Helper()
	ports, err := backends.FreePorts(1)
	if err != nil {
		c.t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	args := append([]string{"router", "--listen", addr, "--id", name, "--no-auth"}, c.baseArgs()...)
	p := testenv.StartProc(c.t, name, append(args, extra...)...)
	r := &routerProc{Proc: p, url: "http://" + addr}
	testenv.Eventually(c.t, 20*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-p.Done():
			c.t.Fatalf("router exited:\n%s", p.Output())
		default:
		}
		resp, err := http.Get(r.url + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("healthz %d", resp.StatusCode)
		}
		return nil
	})
	return r
}

// send posts one message request and decodes the answer into out (a router.Result or
// router.ErrorBody); it returns the HTTP status.
func (r *routerProc) send(t *testing.T, body any, out any) int {
	t.Helper()
	return postJSON(t, r.url+"/v1/messages", body, out)
}

func postJSON(t *testing.T, url string, body any, out any) int {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return postRaw(t, url, b, out)
}

func postRaw(t *testing.T, url string, body []byte, out any) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("POST %s: answer %d %q: %v", url, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("GET %s: answer %d %q: %v", url, resp.StatusCode, raw, err)
	}
	return resp.StatusCode
}
