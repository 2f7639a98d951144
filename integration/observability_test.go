package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// TestObservabilityArtefactsAgainstARealCluster runs three nodes (mutual TLS on the internal
// channel, so the certificate gauges exist), a router and a monitor as real processes, drives
// some traffic through them, then:
//
//   - scrapes every /metrics endpoint and checks that every metric the Grafana dashboard
//     (deploy/grafana/switchboard.json) and the alert rules (deploy/prometheus/alerts.yml)
//     name exists in some scrape, and that what they rate() is a counter;
//   - runs a real Prometheus (Debian's) with deploy/prometheus/prometheus.yml pointed at the
//     cluster: every target is up, every alert rule evaluates without error, the
//     certificate alerts fire for the test's one-day certificates and none of the outage
//     alerts does, and every dashboard query runs and has data, the summary panels showing
//     the cluster as it is (3 nodes ready, a monitor leading, ZooKeeper's quorum).
func TestObservabilityArtefactsAgainstARealCluster(t *testing.T) {
	promBin := testenv.Tool(t, "prometheus")
	root := testenv.ModuleRoot(t)
	c := newCluster(t)
	certs := testenv.GenerateCerts(t)
	mtls := []string{"--internal-cert", certs.ServerCert, "--internal-key", certs.ServerKey, "--internal-ca", certs.CA}
	nodes := []*nodeProc{c.startNode("obs-1", mtls...), c.startNode("obs-2", mtls...), c.startNode("obs-3", mtls...)}
	r := c.startRouter("obs-r", "--internal-cert", certs.ClientCert, "--internal-key", certs.ClientKey, "--internal-ca", certs.CA)
	mon := c.startMonitor("obs-m")
	mon.waitLeading(t, 20*time.Second)

	driveTraffic(t, r, nodes)

	// 1. Every metric a panel or a rule names is in some scrape.
	scrapes := map[string]string{r.url + "/metrics": "router", "http://" + mon.admin + "/metrics": "monitor"}
	for _, n := range nodes {
		scrapes["http://"+n.member.AdminAddr+"/metrics"] = n.id
	}
	types := map[string]string{} // metric family → type
	samples := map[string]bool{} // sample names (with _bucket, _sum, _count)
	for u := range scrapes {
		scrapeInto(t, u, types, samples)
	}
	exprs := dashboardExprs(t, filepath.Join(root, "deploy/grafana/switchboard.json"))
	ruleExprs := ruleExprs(t, filepath.Join(root, "deploy/prometheus/alerts.yml"))
	if len(exprs) < 30 || len(ruleExprs) < 10 {
		t.Fatalf("found %d dashboard and %d rule expressions: the parsers missed some", len(exprs), len(ruleExprs))
	}
	var missing []string
	named := map[string]bool{}
	for _, e := range append(slices.Clone(exprs), ruleExprs...) {
		for _, name := range metricNames(e) {
			named[name] = true
			if !samples[name] {
				missing = append(missing, fmt.Sprintf("%s (in %q)", name, e))
			}
		}
		for _, name := range ratedNames(e) {
			if !isCounterSample(name, types) {
				t.Errorf("%q takes the rate of %s, which is a %s, not a counter", e, name, types[name])
			}
		}
	}
	if len(missing) > 0 {
		t.Fatalf("metrics named by the dashboard or the alerts but in no scrape:\n  %s", strings.Join(missing, "\n  "))
	}
	t.Logf("MEASURED %d metric names referenced by %d dashboard and %d rule expressions, all in the scrapes of %d endpoints",
		len(named), len(exprs), len(ruleExprs), len(scrapes))

	// 2. A real Prometheus scrapes the cluster with the shipped configuration and rules.
	targets := map[string][]string{"switchboard-router": {strings.TrimPrefix(r.url, "http://")}, "switchboard-monitor": {mon.admin}}
	for _, n := range nodes {
		targets["switchboard-node"] = append(targets["switchboard-node"], n.member.AdminAddr)
	}
	prom := startPrometheus(t, promBin, root, targets)
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() error {
		v, err := prom.query("count(up == 1)")
		if err != nil {
			return err
		}
		if len(v) != 1 || v[0].value() != 5 {
			return fmt.Errorf("targets up: %v, want 5", v)
		}
		return nil
	})
	prom.waitRulesHealthy(t)
	// rate() needs two scrapes in its window.
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() error {
		v, err := prom.query(`count(rate(process_cpu_seconds_total{job=~"switchboard-.*"}[1m]))`)
		if err != nil || len(v) != 1 || v[0].value() != 5 {
			return fmt.Errorf("rates of 5 targets: %v %v", v, err)
		}
		return nil
	})

	// The test's certificates expire within a day: both certificate alerts fire, for every
	// process that presents one (the nodes: internal; the router: its client certificate).
	var firing map[string][]string
	testenv.Eventually(t, 20*time.Second, 250*time.Millisecond, func() error {
		alerts, err := prom.alerts()
		if err != nil {
			return err
		}
		firing = alerts
		for _, name := range []string{"SwitchboardCertificateExpiresSoon", "SwitchboardCertificateExpiresVerySoon"} {
			if len(alerts[name]) != 4 {
				return fmt.Errorf("%s for %v, want the 3 nodes and the router", name, alerts[name])
			}
		}
		return nil
	})
	for _, name := range []string{"SwitchboardNodeQuarantined", "SwitchboardNodesCutOffFromCoordinator", "SwitchboardNoMonitorLeader",
		"SwitchboardRouterStoreErrors", "SwitchboardNodeStoreUnreachable", "SwitchboardNodeLeaseLapsed",
		"SwitchboardZooKeeperQuorumLost", "SwitchboardZooKeeperServerDown", "SwitchboardTargetDown"} {
		if len(firing[name]) > 0 {
			t.Errorf("healthy cluster: %s is pending or firing for %v", name, firing[name])
		}
	}

	// Every dashboard query runs; the summary panels show this cluster.
	var empty []string
	for _, e := range exprs {
		if metric, label, ok := labelValues(e); ok {
			// A variable's query (Grafana's label_values): the label's values on the series.
			var values []string
			if err := prom.api("/api/v1/label/"+label+"/values?match[]="+url.QueryEscape(metric), &values); err != nil || len(values) == 0 {
				t.Errorf("dashboard variable %q: %v %v", e, values, err)
			}
			continue
		}
		v, err := prom.query(grafanaVars(e))
		if err != nil {
			t.Errorf("dashboard query %q: %v", e, err)
		} else if len(v) == 0 {
			empty = append(empty, e)
		}
	}
	if len(empty) > 0 {
		t.Errorf("dashboard queries with no data on a running cluster (a panel that stays empty):\n  %s", strings.Join(empty, "\n  "))
	}
	for title, want := range map[string]float64{"Nodes ready": 3, "Quarantined": 0, "Monitor leading": 1, "ZooKeeper quorum": 1} {
		e := dashboardStat(t, filepath.Join(root, "deploy/grafana/switchboard.json"), title)
		v, err := prom.query(grafanaVars(e))
		if err != nil || len(v) != 1 || v[0].value() != want {
			t.Errorf("panel %q (%s): %v %v, want %v", title, e, v, err, want)
		}
	}
	t.Logf("MEASURED real Prometheus: 5 targets up, %d rules healthy, certificate alerts firing for %v",
		len(ruleExprs), firing["SwitchboardCertificateExpiresSoon"])
}

// driveTraffic makes the cluster produce every labelled series the dashboard plots: a
// direct delivery, a queued message drained on reconnect, a takeover, an authentication
// failure, an ACL denial and a connection ended by a limit.
func driveTraffic(t *testing.T, r *routerProc, nodes []*nodeProc) {
	t.Helper()
	a := testenv.ConnectMQTT(t, nodes[0].member.MQTTAddr, "obs-alice", testenv.MQTTOptions{CleanStart: true})
	if err := a.Subscribe("inbox/obs-alice", 1); err != nil {
		t.Fatal(err)
	}
	var res router.Result
	if code := r.send(t, msgReq{To: "obs-alice", Payload: "hello"}, &res); code != 200 || res.Status != router.Delivered {
		t.Fatalf("send to alice: %d %+v", code, res)
	}
	if _, err := a.Next(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if code := r.send(t, msgReq{To: "obs-bob", Payload: "queued"}, &res); code != 200 || res.Status != router.Queued {
		t.Fatalf("send to offline bob: %d %+v", code, res)
	}
	b := testenv.ConnectMQTT(t, nodes[1].member.MQTTAddr, "obs-bob", testenv.MQTTOptions{CleanStart: true})
	if err := b.Subscribe("inbox/obs-bob", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Next(5 * time.Second); err != nil {
		t.Fatalf("bob's mailbox: %v", err)
	}
	// An anonymous client may read only its own inbox.
	if err := b.Subscribe("inbox/obs-alice", 1); err == nil {
		t.Fatal("bob subscribed to alice's inbox")
	}
	// alice again, on another node: a takeover.
	testenv.ConnectMQTT(t, nodes[2].member.MQTTAddr, "obs-alice", testenv.MQTTOptions{CleanStart: true})
	if cl, err := testenv.DialMQTT(nodes[2].member.MQTTAddr, "obs-mallory", testenv.MQTTOptions{CleanStart: true,
		Username: "mallory", Password: []byte("guess")}); err == nil {
		cl.Close()
		t.Fatal("unknown user admitted")
	}
	// A CONNECT declaring 100,000 bytes (over --max-connect-size) is closed from its header.
	conn, err := net.DialTimeout("tcp", nodes[2].member.MQTTAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte{0x10, 0xA0, 0x8D, 0x06})
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, conn)
	conn.Close()
}

// scrapeInto reads one /metrics page into the families' types and the sample names.
func scrapeInto(t *testing.T, u string, types map[string]string, samples map[string]bool) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("scrape %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %d", u, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			samples[line[:i]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape %s: %v", u, err)
	}
}

var (
	metricRe = regexp.MustCompile(`\b(?:switchboard|process|go)_[a-z0-9_]+`)
	ratedRe  = regexp.MustCompile(`\b(?:rate|irate|increase)\(\s*((?:switchboard|process|go)_[a-z0-9_]+)`)
)

// metricNames are the metric names an expression names: ours and the Go client's standard
// ones. Prometheus's own `up` is not in any scrape and is not checked.
func metricNames(expr string) []string { return metricRe.FindAllString(expr, -1) }

func ratedNames(expr string) []string {
	var out []string
	for _, m := range ratedRe.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	return out
}

// isCounterSample: the rate of a counter, or of a histogram's cumulative series.
func isCounterSample(name string, types map[string]string) bool {
	if types[name] == "counter" {
		return true
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && types[base] == "histogram" {
			return true
		}
	}
	return false
}

// grafanaDashboard is the part of the dashboard JSON the test reads.
type grafanaDashboard struct {
	Panels []struct {
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

func readDashboard(t *testing.T, path string) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

// dashboardExprs are the PromQL expressions of every panel and of the query variables.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	d := readDashboard(t, path)
	var out []string
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			out = append(out, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out = append(out, v.Definition)
		}
	}
	return out
}

func dashboardStat(t *testing.T, path, title string) string {
	t.Helper()
	for _, p := range readDashboard(t, path).Panels {
		if p.Title == title && p.Type == "stat" && len(p.Targets) == 1 {
			return p.Targets[0].Expr
		}
	}
	t.Fatalf("no stat panel %q in %s", title, path)
	return ""
}

// grafanaVars replaces the dashboard's variables as Grafana would with "All" selected.
func grafanaVars(expr string) string {
	return strings.NewReplacer("$__rate_interval", "1m", "$node", ".*", "$router", ".*", "$monitor", ".*").Replace(expr)
}

var labelValuesRe = regexp.MustCompile(`^label_values\(\s*([a-z_:][a-z0-9_:]*)\s*,\s*([a-z_][a-z0-9_]*)\s*\)$`)

// labelValues recognises Grafana's label_values(metric, label) variable query.
func labelValues(expr string) (metric, label string, ok bool) {
	m := labelValuesRe.FindStringSubmatch(strings.TrimSpace(expr))
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// ruleExprs reads the expr of every rule in a Prometheus rules file: `expr: ...` on one
// line, or a block (`expr: |`) of the more indented lines that follow.
func ruleExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		v, ok := strings.CutPrefix(trimmed, "expr:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if v != "|" && v != ">" && v != "|-" && v != ">-" {
			out = append(out, v)
			continue
		}
		indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
		var block []string
		for i+1 < len(lines) {
			next := lines[i+1]
			if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
				break
			}
			block = append(block, strings.TrimSpace(next))
			i++
		}
		out = append(out, strings.TrimSpace(strings.Join(block, " ")))
	}
	return out
}

// extProc is an external server a test runs (Prometheus, HAProxy), killed when the test ends.
type extProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startExternal(t *testing.T, name, bin string, args ...string) *extProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &extProc{cmd: exec.Command(bin, args...), log: logPath, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return p
}

// promServer is a running Prometheus and its HTTP API.
type promServer struct {
	*extProc
	url string
}

// startPrometheus runs Prometheus with deploy/prometheus/prometheus.yml and alerts.yml,
// its targets replaced by the test's and its intervals shortened to a second.
func startPrometheus(t *testing.T, bin, root string, targets map[string][]string) *promServer {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(root, "deploy/prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg []string
	job, replaced := "", 0
	for _, line := range strings.Split(string(src), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "- job_name:"):
			job = strings.TrimSpace(strings.TrimPrefix(trimmed, "- job_name:"))
		case strings.HasPrefix(trimmed, "- targets:") && !strings.HasPrefix(trimmed, "#"):
			ts, ok := targets[job]
			if !ok {
				t.Fatalf("prometheus.yml: job %q has no test targets", job)
			}
			quoted := make([]string, len(ts))
			for i, a := range ts {
				quoted[i] = `"` + a + `"`
			}
			line = line[:strings.Index(line, "-")] + "- targets: [" + strings.Join(quoted, ", ") + "]"
			replaced++
		case strings.HasPrefix(trimmed, "scrape_interval:"), strings.HasPrefix(trimmed, "evaluation_interval:"):
			line = strings.Replace(line, "15s", "1s", 1)
		}
		cfg = append(cfg, line)
	}
	if replaced != len(targets) {
		t.Fatalf("prometheus.yml: replaced the targets of %d jobs, want %d", replaced, len(targets))
	}
	for _, f := range []struct{ name, body string }{
		{"prometheus.yml", strings.Join(cfg, "\n")},
		{"switchboard-router.token", "not-needed-with-no-auth\n"},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rules, err := os.ReadFile(filepath.Join(root, "deploy/prometheus/alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	ports, err := backends.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	p := &promServer{url: "http://" + addr}
	p.extProc = startExternal(t, "prometheus", bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		select {
		case <-p.done:
			t.Fatalf("prometheus exited; see its log")
		default:
		}
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/-/ready %d", resp.StatusCode)
		}
		return nil
	})
	return p
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) value() float64 {
	str, _ := s.Value[1].(string)
	var v float64
	_, _ = fmt.Sscanf(str, "%g", &v)
	return v
}

func (p *promServer) api(path string, out any) error {
	resp, err := http.Get(p.url + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// query runs an instant query; a scalar result is returned as one sample.
func (p *promServer) query(q string) ([]promSample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.api("/api/v1/query?query="+url.QueryEscape(q), &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var v []promSample
		return v, json.Unmarshal(data.Result, &v)
	case "scalar":
		var s promSample
		return []promSample{s}, json.Unmarshal(data.Result, &s.Value)
	}
	return nil, nil
}

// waitRulesHealthy waits until every rule has been evaluated, and fails on any in error.
func (p *promServer) waitRulesHealthy(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() error {
		var data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := p.api("/api/v1/rules", &data); err != nil {
			return err
		}
		n := 0
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				n++
				switch r.Health {
				case "ok":
				case "err":
					t.Fatalf("rule %s: %s", r.Name, r.LastError)
				default:
					return fmt.Errorf("rule %s: health %q", r.Name, r.Health)
				}
			}
		}
		if n == 0 {
			return fmt.Errorf("no rules loaded")
		}
		return nil
	})
}

// alerts returns the pending and firing alerts: alert name → instance/cert of each.
func (p *promServer) alerts() (map[string][]string, error) {
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := p.api("/api/v1/alerts", &data); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, a := range data.Alerts {
		who := a.Labels["instance"]
		if c := a.Labels["cert"]; c != "" {
			who += "/" + c
		}
		out[a.Labels["alertname"]] = append(out[a.Labels["alertname"]], who+" "+a.State)
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out, nil
}
