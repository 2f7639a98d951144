package integration

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// HAProxy's check timing in the test: a server is out after fall failed checks inter apart.
const (
	haInter = 200 * time.Millisecond
	haFall  = 2
)

// TestHAProxyInFrontOfNodes runs Debian's HAProxy with deploy/haproxy/haproxy.cfg (its
// addresses, ports and check interval replaced by the test's) in front of three real nodes
// and two real routers, and shows:
//
//   - a node quarantined with `switchboard quarantine` stops receiving new MQTT connections
//     through HAProxy (its /healthz answers 503) before it leaves the live set, which it does
//     only after --quarantine-grace;
//   - a node killed with SIGKILL is taken out within inter × fall: every new connection
//     lands on the others after that;
//   - the routers' API answers through HAProxy, with its health check passing.
//
// Which node a connection landed on is read from the nodes' own connection counters
// (switchboard_node_connections_total, accepted or refused): the test opens one connection
// at a time, so exactly one node's count moves.
func TestHAProxyInFrontOfNodes(t *testing.T) {
	bin := testenv.Tool(t, "haproxy")
	root := testenv.ModuleRoot(t)
	c := newCluster(t)
	const grace = 3 * time.Second
	graceFlag := []string{"--quarantine-grace", grace.String()}
	wsAddrs := freeAddrs(t, 3)
	var nodes []*nodeProc
	for i, id := range []string{"lb-1", "lb-2", "lb-3"} {
		n := c.startNode(id, append(graceFlag, "--ws", wsAddrs[i])...)
		n.ws = wsAddrs[i]
		nodes = append(nodes, n)
	}
	routers := []*routerProc{c.startRouter("lb-r1"), c.startRouter("lb-r2")}
	ha := startHAProxy(t, bin, root, nodes, routers)
	ha.waitChecked(t, "switchboard_mqtt", len(nodes))
	ha.waitChecked(t, "switchboard_api", len(routers))
	ha.waitChecked(t, "switchboard_mqtt_ws", len(nodes))

	// MQTT over WebSocket through HAProxy's WebSocket frontend.
	if code, err := wsConnect(ha.ws, "lb-ws"); err != nil || code != 0 {
		t.Fatalf("MQTT over WebSocket through HAProxy: CONNACK %#x, %v", code, err)
	}

	// The API through HAProxy.
	var res router.Result
	if code := postJSON(t, "http://"+ha.api+"/v1/messages", msgReq{To: "lb-nobody", Payload: "via haproxy"}, &res); code != 200 ||
		res.Status != router.Queued {
		t.Fatalf("send through HAProxy: %d %+v", code, res)
	}

	// (a) Quarantine.
	q := nodes[0]
	lands := startLanding(t, ha.mqtt, nodes)
	lands.waitOn(t, q.id, 3)
	// Both instants are watched from before the command, at once: neither waits for the other.
	unhealthyAt := firstTime(t, 10*time.Second, func() bool {
		status, _, err := health(q.member.AdminAddr)
		return err == nil && status == 503
	})
	downAt := firstTime(t, 10*time.Second, func() bool {
		st, err := ha.servers()
		return err == nil && st["switchboard_mqtt/"+q.id]["status"] == "DOWN"
	})
	mark := time.Now()
	code, out, errOut := testenv.Run(t, 30*time.Second, "quarantine", q.id, "--reason", "haproxy test",
		"--zk", c.zk, "--zk-root", c.root)
	if code != 0 {
		t.Fatalf("quarantine: %d %s %s", code, out, errOut)
	}
	ran := time.Since(mark)
	unhealthy, down := unhealthyAt(), downAt()
	// What the alert and the dashboard read: the node's own gauges.
	for sample, want := range map[string]float64{"switchboard_node_quarantined": 1, "switchboard_node_ready": 0} {
		if v, err := metric(q.member.AdminAddr, sample); err != nil || v != want {
			t.Fatalf("quarantined node's %s = %v (%v), want %v", sample, v, err, want)
		}
	}
	c.waitMember(q.id, 20*time.Second, func(_ coord.Member, ok bool) bool { return !ok })
	left := time.Now()
	lands.waitAfter(t, left, 20)
	got := lands.stop()

	before, after, refused := 0, 0, 0
	var last landing
	for _, l := range got {
		if l.node != q.id {
			continue
		}
		last = l
		switch {
		case l.at.Before(mark):
			before++
		default:
			after++
			if !l.ok {
				refused++
			}
		}
	}
	if before == 0 {
		t.Fatalf("no connection reached %s before the quarantine: the measurement shows nothing", q.id)
	}
	if !last.at.Before(left) {
		t.Fatalf("HAProxy sent %s a connection at %v, after it left the live set (%v)", q.id,
			last.at.Sub(mark).Round(time.Millisecond), left.Sub(mark).Round(time.Millisecond))
	}
	if last.at.After(down.Add(100 * time.Millisecond)) {
		t.Fatalf("HAProxy sent %s a connection %v after marking it down", q.id, last.at.Sub(down).Round(time.Millisecond))
	}
	for _, l := range got {
		if l.at.After(down) && l.node != "" && l.node != q.id && !l.ok {
			t.Fatalf("a connection to a healthy node failed after %s was taken out: %+v", q.id, l)
		}
	}
	if left.Sub(mark) < grace {
		t.Fatalf("%s left the live set %v after the mark, before the grace %v", q.id, left.Sub(mark), grace)
	}
	t.Logf("MEASURED haproxy quarantine (inter %v, fall %d, grace %v; the command ran %v): mark → /healthz 503 %v, → HAProxy DOWN %v, "+
		"→ last connection HAProxy sent it %v, → out of the live set %v; %d connections reached it after the mark (%d refused with CONNACK 0x9C), %d before",
		haInter, haFall, grace, ran.Round(time.Millisecond), unhealthy.Sub(mark).Round(time.Millisecond), down.Sub(mark).Round(time.Millisecond),
		last.at.Sub(mark).Round(time.Millisecond), left.Sub(mark).Round(time.Millisecond), after, refused, before)

	// (b) SIGKILL.
	k, survivor := nodes[1], nodes[2]
	lands = startLanding(t, ha.mqtt, nodes)
	lands.waitOn(t, k.id, 3)
	killed := time.Now()
	k.Kill()
	gone := ha.waitDown(t, "switchboard_mqtt", k.id, 10*time.Second)
	lands.waitAfter(t, gone, 30)
	got = lands.stop()
	failed, window := 0, 0
	for _, l := range got {
		if l.at.Before(killed) {
			continue
		}
		if l.at.Before(gone) {
			window++
			if !l.ok {
				failed++
			}
			continue
		}
		if !l.ok || l.node != survivor.id {
			t.Fatalf("after HAProxy took %s out, a connection landed on %q (ok %v, %v)", k.id, l.node, l.ok, l.err)
		}
	}
	// The first check after the kill comes within inter, the fall-th failure (fall-1) × inter
	// later: inter × fall at most, with room for a loaded machine's scheduling.
	if limit := haInter*haFall + 200*time.Millisecond; gone.Sub(killed) > limit {
		t.Fatalf("killed %s taken out after %v, more than inter × fall (+200ms of scheduling) = %v", k.id, gone.Sub(killed), limit)
	}
	t.Logf("MEASURED haproxy SIGKILL (inter %v, fall %d): kill → HAProxy DOWN %v; %d connections in between, %d failed "+
		"(HAProxy redispatches a refused connect); every later connection landed on %s",
		haInter, haFall, gone.Sub(killed).Round(time.Millisecond), window, failed, survivor.id)
}

// haproxy is a running HAProxy with its frontends' addresses.
type haproxy struct {
	*extProc
	mqtt, ws, api, stats string
}

// startHAProxy checks deploy/haproxy/haproxy.cfg with `haproxy -c`, rewrites it for the
// test (see haproxyTestConfig), checks that too, and runs it in the foreground.
func startHAProxy(t *testing.T, bin, root string, nodes []*nodeProc, routers []*routerProc) *haproxy {
	t.Helper()
	src := filepath.Join(root, "deploy/haproxy/haproxy.cfg")
	if out, err := exec.Command(bin, "-c", "-f", src).CombinedOutput(); err != nil || strings.Contains(string(out), "WARNING") {
		t.Fatalf("haproxy -c -f %s: %v\n%s", src, err, out)
	}
	ports, err := backends.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	h := &haproxy{mqtt: fmt.Sprintf("127.0.0.1:%d", ports[0]), api: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		stats: fmt.Sprintf("127.0.0.1:%d", ports[2]), ws: fmt.Sprintf("127.0.0.1:%d", ports[3])}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyTestConfig(t, string(b), h, nodes, routers)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil || strings.Contains(string(out), "WARNING") {
		t.Fatalf("haproxy -c -f %s: %v\n%s", cfg, err, out)
	}
	h.extProc = startExternal(t, "haproxy", bin, "-db", "-f", cfg)
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-h.done:
			t.Fatalf("haproxy exited; see its log")
		default:
		}
		_, err := h.servers()
		return err
	})
	return h
}

// haproxyTestConfig is the shipped configuration with the test's addresses: the global
// section (chroot, user, system log) replaced by one that logs to stderr; every bind on
// 127.0.0.1 and a free port; each server line pointed at a test node (its MQTT address,
// `check port` its admin port) or router; the check interval shortened. Everything else —
// modes, balance, health checks, timeouts, limits — is the shipped file's. It fails the
// test if the file no longer has the lines it replaces.
func haproxyTestConfig(t *testing.T, src string, h *haproxy, nodes []*nodeProc, routers []*routerProc) string {
	t.Helper()
	binds := map[string]string{"frontend mqtt": h.mqtt, "frontend mqtt_ws": h.ws, "frontend api": h.api, "listen stats": h.stats}
	servers := map[string][]string{}
	for _, n := range nodes {
		_, admin, _ := strings.Cut(n.member.AdminAddr, ":")
		servers["backend switchboard_mqtt"] = append(servers["backend switchboard_mqtt"],
			fmt.Sprintf("server %s %s check port %s", n.id, n.member.MQTTAddr, admin))
		servers["backend switchboard_mqtt_ws"] = append(servers["backend switchboard_mqtt_ws"],
			fmt.Sprintf("server %s %s check port %s", n.id, n.ws, admin))
	}
	for i, r := range routers {
		servers["backend switchboard_api"] = append(servers["backend switchboard_api"],
			fmt.Sprintf("server router-%d %s check", i+1, strings.TrimPrefix(r.url, "http://")))
	}
	var out []string
	section, bound, defaultServer := "", 0, 0
	used := map[string]int{}
	for _, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if line != "" && line[0] != ' ' && line[0] != '#' {
			section = trimmed
			if section == "global" {
				out = append(out, "global", "    log stderr format raw local0 info", "    maxconn 1000")
				continue
			}
		}
		if section == "global" || strings.HasPrefix(trimmed, "#") {
			if section != "global" {
				out = append(out, line)
			}
			continue
		}
		indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
		switch {
		case strings.HasPrefix(trimmed, "bind "):
			addr, ok := binds[section]
			if !ok {
				t.Fatalf("haproxy.cfg: a bind in %q, which the test does not know", section)
			}
			line = indent + "bind " + addr
			bound++
		case strings.HasPrefix(trimmed, "server "):
			i := used[section]
			if i >= len(servers[section]) {
				t.Fatalf("haproxy.cfg: %q has more servers than the test runs (%d)", section, len(servers[section]))
			}
			line = indent + servers[section][i]
			used[section]++
		case strings.HasPrefix(trimmed, "default-server "):
			f := strings.Fields(trimmed)
			for j := 1; j+1 < len(f); j++ {
				switch f[j] {
				case "inter", "fastinter", "downinter":
					f[j+1] = haInter.String()
				case "fall":
					f[j+1] = fmt.Sprint(haFall)
				}
			}
			line = indent + strings.Join(f, " ")
			defaultServer++
		}
		out = append(out, line)
	}
	if bound != len(binds) || defaultServer != 1 {
		t.Fatalf("haproxy.cfg: replaced %d binds (want %d) and %d default-server lines (want 1)", bound, len(binds), defaultServer)
	}
	for s, want := range servers {
		if used[s] != len(want) {
			t.Fatalf("haproxy.cfg: %q has %d servers, the test runs %d", s, used[s], len(want))
		}
	}
	return strings.Join(out, "\n")
}

// servers reads HAProxy's statistics (CSV): "backend/server" → column → value.
func (h *haproxy) servers() (map[string]map[string]string, error) {
	resp, err := http.Get("http://" + h.stats + "/stats;csv")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(b), "# "))).ReadAll()
	if err != nil || len(rows) < 2 {
		return nil, fmt.Errorf("stats %q: %v", b, err)
	}
	out := map[string]map[string]string{}
	for _, row := range rows[1:] {
		m := map[string]string{}
		for i, col := range rows[0] {
			if i < len(row) {
				m[col] = row[i]
			}
		}
		out[m["pxname"]+"/"+m["svname"]] = m
	}
	return out, nil
}

// waitChecked waits until n servers of backend passed a health check (L7OK: HTTP 200).
func (h *haproxy) waitChecked(t *testing.T, backend string, n int) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		st, err := h.servers()
		if err != nil {
			return err
		}
		ok := 0
		for key, s := range st {
			if strings.HasPrefix(key, backend+"/") && s["status"] == "UP" && s["check_status"] == "L7OK" {
				ok++
			}
		}
		if ok != n {
			return fmt.Errorf("%d of %d servers of %s checked UP: %v", ok, n, backend, st)
		}
		return nil
	})
}

// waitDown polls the statistics until HAProxy marks the server DOWN, and returns when.
func (h *haproxy) waitDown(t *testing.T, backend, server string, d time.Duration) time.Time {
	t.Helper()
	var at time.Time
	testenv.Eventually(t, d, 5*time.Millisecond, func() error {
		st, err := h.servers()
		if err != nil {
			return err
		}
		s := st[backend+"/"+server]
		if s["status"] != "DOWN" {
			return fmt.Errorf("%s/%s: %s (%s)", backend, server, s["status"], s["check_status"])
		}
		at = time.Now()
		return nil
	})
	return at
}

// firstTime polls cond every 5ms from now on, in the background, and returns a function
// that waits for the first instant it held (failing the test after d).
func firstTime(t *testing.T, d time.Duration, cond func() bool) func() time.Time {
	t.Helper()
	got := make(chan time.Time, 1)
	go func() {
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			if cond() {
				got <- time.Now()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		close(got)
	}()
	return func() time.Time {
		t.Helper()
		at, ok := <-got
		if !ok {
			t.Fatalf("condition not met within %v", d)
		}
		return at
	}
}

// landing is one new MQTT connection made through HAProxy, and the node that saw it.
type landing struct {
	at   time.Time // when the CONNACK (or the failure) came
	node string    // "" if no node counted it
	ok   bool
	err  error
}

// lander opens one MQTT 5 connection after another through HAProxy until stopped, and
// records where each landed.
type lander struct {
	stopCh chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	got    []landing
}

func startLanding(t *testing.T, addr string, nodes []*nodeProc) *lander {
	t.Helper()
	l := &lander{stopCh: make(chan struct{}), done: make(chan struct{})}
	counts := make([]float64, len(nodes))
	read := func() {
		for i, n := range nodes {
			if v, err := connectionCount(n.member.AdminAddr); err == nil {
				counts[i] = v
			}
		}
	}
	read()
	go func() {
		defer close(l.done)
		for i := 0; ; i++ {
			select {
			case <-l.stopCh:
				return
			default:
			}
			cl, err := testenv.DialMQTT(addr, fmt.Sprintf("lb-dev-%05d", i), testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 3 * time.Second})
			at := time.Now()
			if err == nil {
				cl.Close()
			}
			prev := append([]float64(nil), counts...)
			read()
			ld := landing{at: at, ok: err == nil, err: err}
			for j := range nodes {
				if counts[j] > prev[j] {
					ld.node = nodes[j].id
				}
			}
			l.mu.Lock()
			l.got = append(l.got, ld)
			l.mu.Unlock()
			time.Sleep(10 * time.Millisecond) // a client population, not a flood
		}
	}()
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *lander) snapshot() []landing {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]landing(nil), l.got...)
}

// waitOn waits until n connections have landed on node.
func (l *lander) waitOn(t *testing.T, node string, n int) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, 20*time.Millisecond, func() error {
		k := 0
		for _, g := range l.snapshot() {
			if g.node == node && g.ok {
				k++
			}
		}
		if k < n {
			return fmt.Errorf("%d connections landed on %s, want %d", k, node, n)
		}
		return nil
	})
}

// waitAfter waits until n connections have landed after instant at.
func (l *lander) waitAfter(t *testing.T, at time.Time, n int) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, 20*time.Millisecond, func() error {
		k := 0
		for _, g := range l.snapshot() {
			if g.at.After(at) {
				k++
			}
		}
		if k < n {
			return fmt.Errorf("%d connections after %v, want %d", k, at, n)
		}
		return nil
	})
}

// stop ends the connections and returns every landing. Idempotent.
func (l *lander) stop() []landing {
	select {
	case <-l.stopCh:
	default:
		close(l.stopCh)
	}
	<-l.done
	return l.snapshot()
}

// connectionCount sums a node's switchboard_node_connections_total over every result.
func connectionCount(adminAddr string) (float64, error) {
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "switchboard_node_connections_total{") {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err == nil {
			sum += v
		}
	}
	return sum, nil
}
