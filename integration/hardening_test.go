package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// nonLoopbackHost returns an IPv4 address of this machine that is not loopback or, on a
// machine with none, 0.0.0.0 (every interface: not loopback either). A node must refuse to
// listen for routers on it without authentication; the tests that use it bind nothing on
// it, and check that the node refused before binding anything.
func nonLoopbackHost(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return "0.0.0.0"
}

// secretFile writes content to a file of mode 0600 in a fresh directory.
func secretFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// occupied listens on a free 127.0.0.1 port for the test's duration and returns it: a
// process told to listen there fails the moment it tries, so a refusal that names
// something else came before it bound anything.
func occupied(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// refusedBeforeBinding runs a node that must refuse to start with a usage error (exit 2)
// naming every string in want. Its MQTT port (the first it binds) is taken, so had it
// gone as far as binding, it would have failed on that instead.
func (c *cluster) refusedBeforeBinding(t *testing.T, want []string, args ...string) string {
	t.Helper()
	mqtt := occupied(t)
	all := append([]string{"node", "--id", "refused", "--allow-anonymous", "--mqtt", mqtt, "--data-dir", t.TempDir()}, c.baseArgs()...)
	start := time.Now()
	code, _, errOut := testenv.Run(t, 20*time.Second, append(all, args...)...)
	took := time.Since(start)
	if code != 2 {
		t.Fatalf("node %v: exit %d, want 2 (refused); stderr:\n%s", args, code, errOut)
	}
	if strings.Contains(errOut, "address already in use") || strings.Contains(errOut, "--mqtt") {
		t.Fatalf("node %v got as far as binding: %s", args, errOut)
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			t.Fatalf("node %v: refusal %q does not name %s", args, errOut, w)
		}
	}
	t.Logf("MEASURED node %v refused in %v: %s", args, took.Round(time.Millisecond), testenv.LastLines(strings.TrimSpace(errOut), 1))
	return errOut
}

// TestNodeRefusesUnauthenticatedInternalChannel: a node told to listen for routers and
// other nodes on a non-loopback address, with neither a cluster token nor mutual TLS (TLS
// without a client CA included), refuses to start, before it binds anything, naming the
// flags to use; it never joins the live set.
func TestNodeRefusesUnauthenticatedInternalChannel(t *testing.T) {
	c := newCluster(t)
	host := nonLoopbackHost(t)
	internal := net.JoinHostPort(host, "7883")
	t.Logf("non-loopback address used: %s", host)
	want := []string{"--internal", "--cluster-token-file", "--internal-cert", "--internal-key", "--internal-ca"}
	c.refusedBeforeBinding(t, want, "--internal", internal, "--admin", "127.0.0.1:0")
	c.refusedBeforeBinding(t, want, "--internal", ":7883", "--admin", "127.0.0.1:0")
	certs := testenv.GenerateCerts(t)
	c.refusedBeforeBinding(t, []string{"--internal", "--internal-ca"}, "--internal", internal, "--admin", "127.0.0.1:0",
		"--internal-cert", certs.ServerCert, "--internal-key", certs.ServerKey)
	if _, ok := findMember(c, "refused"); ok {
		t.Fatal("a refused node joined the live set")
	}
}

// findMember reports whether id is in the cluster's live set now.
func findMember(c *cluster, id string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := c.obs.Members(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, m := range ms {
		if m.ID == id {
			return m.InternalAddr, true
		}
	}
	return "", false
}

// TestWireHelloNeedsTheToken: with a cluster token set, a hello without it, with a wrong
// one or with a longer one is refused; the right one is accepted. A router without the
// token cannot hand the node anything (its message is only queued); one with it delivers.
func TestWireHelloNeedsTheToken(t *testing.T) {
	c := newCluster(t)
	const token = "wire-token-0123456789abcdef"
	tokenFile := secretFile(t, "cluster.token", token+"\n")
	n := c.startNode("tok-n", "--cluster-token-file", tokenFile)
	ctx := testenv.Context(t, 30*time.Second)
	for _, tok := range []string{"", "wrong-token-0123456789abcdef", token + "x", token[:len(token)-1]} {
		conn, err := wire.Dial(ctx, n.member.InternalAddr, wire.DialOptions{Token: tok})
		if err == nil {
			conn.Close()
			t.Fatalf("hello with token %q accepted", tok)
		}
		if !errors.Is(err, wire.ErrRefused) || !strings.Contains(err.Error(), "bad token") {
			t.Fatalf("hello with token %q: %v, want refused for a bad token", tok, err)
		}
	}
	conn, err := wire.Dial(ctx, n.member.InternalAddr, wire.DialOptions{Token: token})
	if err != nil {
		t.Fatalf("hello with the token: %v", err)
	}
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("ping after the hello: %v", err)
	}
	conn.Close()

	cl := inboxClient(t, n.member.MQTTAddr, "tok-dev")
	without := c.startRouter("r-notoken")
	with := c.startRouter("r-token", "--cluster-token-file", tokenFile)
	var res router.Result
	if code := without.send(t, msgReq{To: "tok-dev", Payload: "from a stranger"}, &res); code != 200 || res.Status == router.Delivered {
		t.Fatalf("router without the token: %d %+v, want the message queued, not handed to the node", code, res)
	}
	t.Logf("MEASURED router without the token: %s (depth %d)", res.Status, res.Depth)
	if code := with.send(t, msgReq{To: "tok-dev", Payload: "from the router"}, &res); code != 200 || res.Status != router.Delivered {
		t.Fatalf("router with the token: %d %+v, want delivered", code, res)
	}
	for _, want := range []string{"from a stranger", "from the router"} {
		m, err := cl.Next(10 * time.Second)
		if err != nil || string(m.Payload) != want {
			t.Fatalf("client got %q %v, want %q (the queued one drains first)", m.Payload, err, want)
		}
	}
	for _, p := range []*testenv.Proc{n.Proc, without.Proc, with.Proc} {
		if strings.Contains(p.Output(), token) {
			t.Fatal("a process logged the cluster token")
		}
	}
}

// adminGet fetches an admin path with an optional bearer token and returns the status and
// the body's start.
func adminGet(t *testing.T, addr, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// TestPprofOnlyWhenAskedAndGuarded: /debug/pprof is 404 by default; with --pprof and an
// admin token it is 401 without the token or with a wrong one and 200 with it, while
// /healthz and /metrics stay open; with --pprof alone it is served on loopback only, and
// --pprof on a non-loopback admin address without a token is refused before binding.
func TestPprofOnlyWhenAskedAndGuarded(t *testing.T) {
	c := newCluster(t)
	paths := []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1", "/debug/pprof/heap", "/debug/pprof/trace?seconds=1"}
	off := c.startNode("pp-off")
	for _, p := range paths {
		if code, _ := adminGet(t, off.member.AdminAddr, p, ""); code != 404 {
			t.Fatalf("default node: GET %s = %d, want 404", p, code)
		}
	}

	const token = "admin-token-0123456789abcdef"
	guarded := c.startNode("pp-guarded", "--pprof", "--admin-token-file", secretFile(t, "admin.token", token+"\n"))
	for _, p := range paths {
		for _, tok := range []string{"", "wrong-admin-token-0123456789", token + "x"} {
			if code, _ := adminGet(t, guarded.member.AdminAddr, p, tok); code != 401 {
				t.Fatalf("GET %s with token %q = %d, want 401", p, tok, code)
			}
		}
	}
	if code, body := adminGet(t, guarded.member.AdminAddr, "/debug/pprof/cmdline", token); code != 200 || !strings.Contains(body, "node") {
		t.Fatalf("GET /debug/pprof/cmdline with the token = %d %q, want 200 and the command line", code, body)
	}
	if code, body := adminGet(t, guarded.member.AdminAddr, "/debug/pprof/", token); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("GET /debug/pprof/ with the token = %d, want 200 and the index: %q", code, body)
	}
	for _, p := range []string{"/healthz", "/metrics"} {
		if code, _ := adminGet(t, guarded.member.AdminAddr, p, ""); code != 200 {
			t.Fatalf("GET %s without a token = %d, want 200 (load balancers and Prometheus)", p, code)
		}
	}
	if strings.Contains(guarded.Output(), token) {
		t.Fatal("the node logged the admin token")
	}

	local := c.startNode("pp-local", "--pprof")
	if code, _ := adminGet(t, local.member.AdminAddr, "/debug/pprof/cmdline", ""); code != 200 {
		t.Fatalf("--pprof on loopback without a token: %d, want 200", code)
	}

	c.refusedBeforeBinding(t, []string{"--pprof", "--admin", "--admin-token-file"},
		"--internal", "127.0.0.1:0", "--pprof", "--admin", net.JoinHostPort(nonLoopbackHost(t), "9883"))
}

// startPasswordRedis starts a Redis of the test's own that requires password.
func startPasswordRedis(t *testing.T, password string) *backends.Redis {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	rd, err := backends.StartRedis(ctx, backends.RedisConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rd.Kill() })
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer rc.Close()
	if err := rc.ConfigSet(ctx, "requirepass", password).Err(); err != nil {
		t.Fatal(err)
	}
	return rd
}

// TestSecretsFromFilesAndNeverShown: the cluster token, the Redis password and the
// ZooKeeper credentials work from --*-file flags (and from the environment) without a
// warning; given as flags they work too but each is warned about; no secret appears in any
// process's log, in /healthz, in /metrics, or in an error; a flag and its file together are
// refused naming both.
func TestSecretsFromFilesAndNeverShown(t *testing.T) {
	const (
		token     = "cluster-token-0123456789abcdef"
		redisPass = "redis-pass-0123456789abcdef"
		zkUser    = "switchboard"
		zkPass    = "zk-pass-0123456789abcdef"
		wrongPass = "wrong-redis-pass-0123456789"
	)
	secrets := []string{token, redisPass, zkPass, wrongPass}
	rd := startPasswordRedis(t, redisPass)
	c := newClusterOn(t, shared.Ensemble(t).ConnectString(), rd.Addr)
	files := []string{
		"--cluster-token-file", secretFile(t, "cluster.token", token+"\n"),
		"--redis-password-file", secretFile(t, "redis.pass", "  "+redisPass+"\n"),
		"--zk-auth-file", secretFile(t, "zk.auth", zkUser+":"+zkPass+"\n"),
	}
	n := c.startNode("sec-files", files...)
	r := c.startRouter("r-files", files...)
	cl := inboxClient(t, n.member.MQTTAddr, "sec-dev")
	var res router.Result
	if code := r.send(t, msgReq{To: "sec-dev", Payload: "through authenticated links"}, &res); code != 200 || res.Status != router.Delivered {
		t.Fatalf("send: %d %+v, want delivered (token, Redis password and ZooKeeper credentials all read from files)", code, res)
	}
	if m, err := cl.Next(10 * time.Second); err != nil || string(m.Payload) != "through authenticated links" {
		t.Fatalf("client: %q %v", m.Payload, err)
	}
	noSecrets := func(where, text string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Fatalf("%s shows a secret (%d characters)", where, len(s))
			}
		}
	}
	_, healthz := adminGet(t, n.member.AdminAddr, "/healthz", "")
	_, metrics := adminGet(t, n.member.AdminAddr, "/metrics", "")
	noSecrets("/healthz", healthz)
	noSecrets("/metrics", metrics)
	noSecrets("the node's log", n.Output())
	noSecrets("the router's log", r.Output())
	for _, p := range []*testenv.Proc{n.Proc, r.Proc} {
		if strings.Contains(p.Output(), "process list") {
			t.Fatalf("a warning about the process list without a secret on the command line:\n%s", p.Output())
		}
	}

	// The environment form: no warning either.
	t.Setenv("SWITCHBOARD_REDIS_PASSWORD", redisPass)
	byEnv := c.startNode("sec-env", files[:2]...) // the cluster token from its file; no ZooKeeper credentials, fine for a node
	if strings.Contains(byEnv.Output(), "process list") {
		t.Fatalf("warned about a secret from the environment:\n%s", byEnv.Output())
	}
	noSecrets("the node's log (environment)", byEnv.Output())
	os.Unsetenv("SWITCHBOARD_REDIS_PASSWORD")

	// On the command line: it works, each is warned about, none is logged.
	flagged := c.startNode("sec-flags", "--cluster-token", token, "--redis-password", redisPass, "--zk-auth", zkUser+":"+zkPass)
	out := flagged.Output()
	for _, f := range []string{"--cluster-token", "--redis-password", "--zk-auth"} {
		warning := f + " was given on the command line"
		if !strings.Contains(out, warning) || !strings.Contains(out, f+"-file") {
			t.Fatalf("no warning naming %s and %s-file:\n%s", f, f, out)
		}
	}
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "process list") {
		t.Fatalf("the warning is not a WARN about the process list:\n%s", out)
	}
	noSecrets("the log of a node given secrets as flags", out)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "process list") {
			t.Logf("MEASURED warning: %s", line)
			break
		}
	}

	// A wrong password from its file: refused, and the error does not show it.
	base := append([]string{"node", "--id", "sec-wrong", "--allow-anonymous", "--mqtt", "127.0.0.1:0", "--internal", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--data-dir", t.TempDir()}, c.baseArgs()...)
	code, stdout, errOut := testenv.Run(t, 30*time.Second, append(base, "--redis-password-file", secretFile(t, "wrong", wrongPass))...)
	if code == 0 {
		t.Fatal("a node with a wrong Redis password started")
	}
	noSecrets("the error for a wrong Redis password", stdout+errOut)
	t.Logf("MEASURED wrong Redis password: exit %d: %s", code, testenv.LastLines(strings.TrimSpace(errOut), 1))

	// A malformed ZooKeeper credential given as a flag: refused, not echoed.
	code, stdout, errOut = testenv.Run(t, 30*time.Second, append(base, "--redis-password-file", files[3], "--zk-auth", zkPass)...)
	if code != 2 || !strings.Contains(errOut, "user:password") {
		t.Fatalf("malformed --zk-auth: exit %d: %s", code, errOut)
	}
	noSecrets("the error for a malformed --zk-auth", stdout+errOut)

	// A flag and its file: refused naming both.
	for _, pair := range [][]string{
		{"--cluster-token", token, "--cluster-token-file", files[1]},
		{"--redis-password", redisPass, "--redis-password-file", files[3]},
		{"--zk-auth", zkUser + ":" + zkPass, "--zk-auth-file", files[5]},
	} {
		code, stdout, errOut := testenv.Run(t, 30*time.Second, append(base, pair...)...)
		if code != 2 || !strings.Contains(errOut, pair[0]+" ") || !strings.Contains(errOut, pair[2]) {
			t.Fatalf("%s and %s together: exit %d: %s", pair[0], pair[2], code, errOut)
		}
		noSecrets("the error for "+pair[0]+" with its file", stdout+errOut)
	}
}

// rawHTTP is a plain TCP connection to an HTTP server, for requests a client library will
// not send: half-finished headers, a connection left idle, a body larger than announced.
type rawHTTP struct {
	net.Conn
	br *bufio.Reader
}

func dialHTTP(t *testing.T, url string) *rawHTTP {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawHTTP{Conn: conn, br: bufio.NewReader(conn)}
}

// response reads one response within d.
func (c *rawHTTP) response(d time.Duration) (*http.Response, string, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, "", err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), nil
}

// closedAfter waits up to d for the server to close the connection, reading and dropping
// anything it sends, and returns how long that took from start.
func (c *rawHTTP) closedAfter(start time.Time, d time.Duration) (time.Duration, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c.br)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return 0, fmt.Errorf("still open after %v", d)
	}
	return time.Since(start), nil // EOF or a reset: closed
}

// startTokenRouter runs a router that requires API tokens, with extra flags.
func (c *cluster) startTokenRouter(t *testing.T, name string, extra ...string) *routerProc {
	t.Helper()
	tokens := secretFile(t, "tokens", "backend api-token-0123456789abcdef\n")
	ports, err := backends.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	args := append([]string{"router", "--listen", addr, "--id", name, "--api-tokens", tokens}, c.baseArgs()...)
	p := testenv.StartProc(t, name, append(args, extra...)...)
	r := &routerProc{Proc: p, url: "http://" + addr}
	testenv.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		conn.Close()
		return nil
	})
	return r
}

// TestRouterClosesIdleAndSlowConnections: before any token is checked, a connection that
// sends nothing, or sends its headers slowly, is closed after the read header timeout, and
// a kept-alive connection whose request was refused (401) is closed after the idle timeout.
func TestRouterClosesIdleAndSlowConnections(t *testing.T) {
	c := newCluster(t)
	const idle, header = time.Second, 500 * time.Millisecond
	r := c.startTokenRouter(t, "r-timeouts", "--idle-timeout", idle.String(), "--read-header-timeout", header.String())

	// Refused for want of a token, then left idle.
	conn := dialHTTP(t, r.url)
	if _, err := conn.Write([]byte("POST /v1/messages HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")); err != nil {
		t.Fatal(err)
	}
	resp, _, err := conn.response(5 * time.Second)
	if err != nil || resp.StatusCode != 401 || resp.Close {
		t.Fatalf("unauthenticated request: %v %v, want 401 on a kept-alive connection", resp, err)
	}
	took, err := conn.closedAfter(time.Now(), 10*time.Second)
	if err != nil {
		t.Fatalf("idle connection after a 401: %v", err)
	}
	t.Logf("MEASURED idle kept-alive connection after a 401 closed after %v (--idle-timeout %v)", took.Round(time.Millisecond), idle)
	if took < idle-100*time.Millisecond || took > idle+2*time.Second {
		t.Fatalf("idle connection closed after %v, want about %v", took, idle)
	}

	// Connected, silent.
	start := time.Now()
	conn = dialHTTP(t, r.url)
	if took, err = conn.closedAfter(start, 10*time.Second); err != nil {
		t.Fatalf("silent connection: %v", err)
	}
	t.Logf("MEASURED silent connection closed after %v (--read-header-timeout %v)", took.Round(time.Millisecond), header)
	if took < header-100*time.Millisecond || took > header+2*time.Second {
		t.Fatalf("silent connection closed after %v, want about %v", took, header)
	}

	// Headers trickled, one line every 100ms, never finished (slowloris).
	start = time.Now()
	conn = dialHTTP(t, r.url)
	var lines atomic.Int64
	go func() {
		if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: r\r\n")); err != nil {
			return
		}
		for i := 0; ; i++ {
			time.Sleep(100 * time.Millisecond)
			if _, err := fmt.Fprintf(conn, "X-Slow-%d: y\r\n", i); err != nil {
				return
			}
			lines.Add(1)
		}
	}()
	if took, err = conn.closedAfter(start, 10*time.Second); err != nil {
		t.Fatalf("slow headers: %v", err)
	}
	t.Logf("MEASURED connection sending a header line every 100ms closed after %v, %d lines in (--read-header-timeout %v)",
		took.Round(time.Millisecond), lines.Load(), header)
	if took < header-100*time.Millisecond || took > header+2*time.Second {
		t.Fatalf("slow headers: closed after %v, want about %v", took, header)
	}
}

// TestRouterConnectionCap: with --max-connections N, N connections are served and more
// are not (they wait, unaccepted) until some of the first close; then they are served.
func TestRouterConnectionCap(t *testing.T) {
	c := newCluster(t)
	const max, extra = 4, 3
	r := c.startRouter("r-cap", "--max-connections", fmt.Sprint(max), "--idle-timeout", "30s")
	// The start-up health checks' kept-alive connection holds a slot until the router sees
	// it close: the first connections below wait for that, not long.
	http.DefaultClient.CloseIdleConnections()
	get := []byte("GET /healthz HTTP/1.1\r\nHost: r\r\n\r\n")
	var first []*rawHTTP
	for i := range max {
		conn := dialHTTP(t, r.url)
		if _, err := conn.Write(get); err != nil {
			t.Fatal(err)
		}
		if resp, _, err := conn.response(5 * time.Second); err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d of %d: %v %v", i+1, max, resp, err)
		}
		first = append(first, conn)
	}
	var waiting []*rawHTTP
	for range extra {
		conn := dialHTTP(t, r.url) // the kernel completes the handshake; the router does not accept it
		if _, err := conn.Write(get); err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, conn)
	}
	const held = time.Second
	for i, conn := range waiting {
		resp, _, err := conn.response(held / extra)
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Fatalf("connection %d over the cap of %d was served: %v %v", i+1, max, resp, err)
		}
	}
	t.Logf("MEASURED %d connections over --max-connections %d: none answered for %v", extra, max, held)
	closed := time.Now()
	for _, conn := range first[:extra] {
		conn.Close()
	}
	for i, conn := range waiting {
		resp, _, err := conn.response(5 * time.Second)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("waiting connection %d after %d closed: %v %v", i+1, extra, resp, err)
		}
	}
	t.Logf("MEASURED the %d waiting connections were all answered %v after %d of the first closed",
		extra, time.Since(closed).Round(time.Millisecond), extra)
	// The ones still open are still served.
	if _, err := first[max-1].Write(get); err != nil {
		t.Fatal(err)
	}
	if resp, _, err := first[max-1].response(5 * time.Second); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a first connection afterwards: %v %v", resp, err)
	}
}

// TestRouterRefusesOversizedBodyQuickly: a batch body over the cap derived from
// --max-batch and --max-payload is refused with 400 naming "body": from its declared
// length before any of it is read, and, when its length is not declared, once the cap is
// read, not after the whole of it.
func TestRouterRefusesOversizedBodyQuickly(t *testing.T) {
	c := newCluster(t)
	const maxBatch, maxPayload = 10, 1024
	limit := int64(maxBatch) * (int64(maxPayload)*4/3 + 64<<10) // as the router derives it
	r := c.startRouter("r-body", "--max-batch", fmt.Sprint(maxBatch), "--max-payload", fmt.Sprint(maxPayload))
	const huge = 256 << 20

	// Declared: refused from the header; not a byte of the body is sent.
	conn := dialHTTP(t, r.url)
	start := time.Now()
	fmt.Fprintf(conn, "POST /v1/messages/batch HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", huge)
	resp, body, err := conn.response(5 * time.Second)
	if err != nil || resp.StatusCode != 400 || !strings.Contains(body, `"field":"body"`) {
		t.Fatalf("declared %d bytes: %v %q %v, want 400 naming body", huge, resp, body, err)
	}
	t.Logf("MEASURED a declared %d MiB batch body refused in %v with no body sent: %s", huge>>20, time.Since(start).Round(time.Microsecond), strings.TrimSpace(body))

	// Undeclared (chunked), streamed as fast as the connection takes it.
	conn = dialHTTP(t, r.url)
	start = time.Now()
	var sent atomic.Int64
	fmt.Fprintf(conn, "POST /v1/messages/batch HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
	item := `{"to":"big","payload":"` + strings.Repeat("x", maxPayload) + `"},`
	chunk := []byte(strings.Repeat(item, 60))
	frame := append([]byte(fmt.Sprintf("%x\r\n", len(chunk))), append(chunk, "\r\n"...)...)
	go func() {
		if _, err := fmt.Fprintf(conn, "%x\r\n{\"messages\":[\r\n", len(`{"messages":[`)); err != nil {
			return
		}
		for sent.Load() < huge {
			n, err := conn.Write(frame)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	resp, body, err = conn.response(20 * time.Second)
	took, atAnswer := time.Since(start), sent.Load()
	if err != nil || resp.StatusCode != 400 || !strings.Contains(body, `"field":"body"`) || !strings.Contains(body, fmt.Sprint(limit)) {
		t.Fatalf("streamed body: %v %q %v, want 400 naming body and the limit %d", resp, body, err, limit)
	}
	t.Logf("MEASURED a streamed batch body refused after %v, %d KiB sent by then (limit %d KiB, %d MiB offered): %s",
		took.Round(time.Millisecond), atAnswer>>10, limit>>10, huge>>20, strings.TrimSpace(body))
	if atAnswer > 32<<20 {
		t.Fatalf("%d bytes were taken before the refusal; the limit is %d", atAnswer, limit)
	}
	if took, err := conn.closedAfter(time.Now(), 10*time.Second); err != nil {
		t.Fatalf("after refusing the body the router kept the connection: %v", err)
	} else {
		t.Logf("MEASURED connection closed %v after the refusal; %d KiB sent in all", took.Round(time.Millisecond), sent.Load()>>10)
	}
}
