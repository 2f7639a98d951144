// Package deploy_test checks the deployment files in deploy/ against the real software they
// are for: promtool on the alert rules and the dashboard's queries, systemd-analyze on the
// units (and the units' command lines and settings starting the real roles), the release
// build's stamped binary, and the Dockerfile's and compose file's references. HAProxy and a
// running Prometheus are exercised by integration/haproxy_test.go and
// integration/observability_test.go.
package deploy_test

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

func root(t *testing.T) string { return testenv.ModuleRoot(t) }

// run runs a command and fails the test, with its output, if it fails.
func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPrometheusRules: the rules parse, their unit tests pass, the example configuration
// loads them.
func TestPrometheusRules(t *testing.T) {
	promtool := testenv.Tool(t, "promtool")
	dir := filepath.Join(root(t), "deploy", "prometheus")
	t.Log(strings.TrimSpace(run(t, dir, promtool, "check", "rules", "alerts.yml")))
	t.Log(strings.TrimSpace(run(t, dir, promtool, "test", "rules", "alerts_test.yml")))

	// prometheus.yml names its router token file relative to itself: check a copy with one.
	tmp := t.TempDir()
	for _, f := range []string{"prometheus.yml", "alerts.yml"} {
		copyFile(t, filepath.Join(dir, f), filepath.Join(tmp, f))
	}
	if err := os.WriteFile(filepath.Join(tmp, "switchboard-router.token"), []byte("a-token-of-prometheus\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(run(t, tmp, promtool, "check", "config", "prometheus.yml")))

	// Every alert the issue asks for is there, with a severity.
	rules := readFile(t, filepath.Join(dir, "alerts.yml"))
	for _, name := range []string{"SwitchboardNodeQuarantined", "SwitchboardMonitorSelfSuspecting", "SwitchboardNoMonitorLeader",
		"SwitchboardMailboxDepthGrowing", "SwitchboardRouterStoreErrors", "SwitchboardNodeStoreUnreachable",
		"SwitchboardZooKeeperQuorumLost", "SwitchboardCertificateExpiresSoon"} {
		if !strings.Contains(rules, "- alert: "+name+"\n") {
			t.Errorf("alerts.yml has no %s", name)
		}
		if !strings.Contains(readFile(t, filepath.Join(dir, "alerts_test.yml")), "alertname: "+name+"\n") {
			t.Errorf("alerts_test.yml does not test %s", name)
		}
	}
}

// dashboard is the part of the Grafana JSON the checks read.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Inputs        []struct {
		Name     string `json:"name"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Panels []struct {
		ID          int    `json:"id"`
		Type        string `json:"type"`
		Title       string `json:"title"`
		Description string `json:"description"`
		GridPos     struct {
			H, W, X, Y int
		} `json:"gridPos"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr       string `json:"expr"`
			RefID      string `json:"refId"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

// TestGrafanaDashboard: the dashboard is importable (an input for the data source, a uid,
// every panel on the data source variable, inside the 24-column grid and overlapping no
// other), every panel is described, and every query is PromQL that Prometheus's own parser
// accepts (promtool, the queries written as recording rules).
func TestGrafanaDashboard(t *testing.T) {
	promtool := testenv.Tool(t, "promtool")
	var d dashboard
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(root(t), "deploy", "grafana", "switchboard.json"))), &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 || len(d.Inputs) != 1 || d.Inputs[0].PluginID != "prometheus" {
		t.Fatalf("dashboard header: uid %q title %q schema %d inputs %+v", d.UID, d.Title, d.SchemaVersion, d.Inputs)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] {
		t.Fatal("no datasource variable")
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q outside the grid: %+v", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Fatalf("panel %q overlaps %q at %d,%d", p.Title, other, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Description == "" {
			t.Errorf("panel %q has no description", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q is not on the ${datasource} variable", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s is not on the ${datasource} variable", p.Title, tg.RefID)
			}
			for _, v := range regexp.MustCompile(`\$([a-z_]+)`).FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[v[1]] && v[1] != "__rate_interval" {
					t.Errorf("panel %q uses an undefined variable $%s", p.Title, v[1])
				}
			}
			queries++
			expr := strings.NewReplacer("$__rate_interval", "5m", "$node", ".*", "$router", ".*", "$monitor", ".*").Replace(tg.Expr)
			b, _ := json.Marshal(expr) // a JSON string is a YAML string
			fmt.Fprintf(&rules, "      - record: dashboard:panel_%d_%s\n        expr: %s\n", p.ID, strings.ToLower(tg.RefID), b)
		}
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := run(t, "", promtool, "check", "rules", file)
	if !strings.Contains(out, fmt.Sprintf("SUCCESS: %d rules found", queries)) {
		t.Fatalf("promtool on the dashboard's %d queries:\n%s", queries, out)
	}
	t.Logf("MEASURED %d panels, %d queries: all parse", len(d.Panels), queries)
}

// unit is a systemd unit file's [Service] settings, in order.
type unit struct {
	name    string
	service [][2]string
}

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	u := unit{name: filepath.Base(path)}
	section := ""
	for _, line := range strings.Split(readFile(t, path), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			u.service = append(u.service, [2]string{k, v})
		}
	}
	return u
}

func (u unit) all(key string) []string {
	var out []string
	for _, kv := range u.service {
		if kv[0] == key {
			out = append(out, kv[1])
		}
	}
	return out
}

func (u unit) get(key string) string {
	v := u.all(key)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

var units = []string{"switchboard-node@.service", "switchboard-router.service", "switchboard-monitor.service"}

// TestSystemdUnits: systemd-analyze verify accepts every unit (with ExecStart pointing at a
// real binary: verify checks that it exists), its offline security review scores each at
// most 2.0 ("OK"), and each carries the hardening the deployment promises.
func TestSystemdUnits(t *testing.T) {
	analyze := testenv.Tool(t, "systemd-analyze")
	bin := testenv.Binary(t)
	dir := filepath.Join(root(t), "deploy", "systemd")
	tmp := t.TempDir()
	for _, name := range units {
		src := readFile(t, filepath.Join(dir, name))
		if !strings.Contains(src, "ExecStart=/usr/local/bin/switchboard ") {
			t.Fatalf("%s: ExecStart is not /usr/local/bin/switchboard", name)
		}
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(strings.ReplaceAll(src, "/usr/local/bin/switchboard", bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		u := readUnit(t, filepath.Join(dir, name))
		for key, want := range map[string]string{
			"DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
			"PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
			"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces": "yes", "LockPersonality": "yes",
			"MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": "", "Restart": "on-failure", "Type": "exec",
		} {
			if got := u.all(key); len(got) == 0 || got[len(got)-1] != want {
				t.Errorf("%s: %s=%v, want %q", name, key, got, want)
			}
		}
		if !slicesContain(u.all("SystemCallFilter"), "@system-service") {
			t.Errorf("%s: no SystemCallFilter=@system-service", name)
		}
		if len(u.all("EnvironmentFile")) == 0 || len(u.all("LoadCredential")) == 0 || u.get("TimeoutStopSec") == "" {
			t.Errorf("%s: EnvironmentFile, LoadCredential and TimeoutStopSec are all expected", name)
		}
	}
	// The node keeps its data directory in its StateDirectory; its stop timeout covers the
	// node's shutdown timeout (node.DefaultConfig().ShutdownTimeout, 10s) with a margin.
	n := readUnit(t, filepath.Join(dir, "switchboard-node@.service"))
	if n.get("StateDirectory") != "switchboard/%i" || !strings.Contains(n.get("ExecStart"), "--data-dir %S/switchboard/%i") ||
		n.get("TimeoutStopSec") != "15s" {
		t.Errorf("node unit: StateDirectory %q, ExecStart %q, TimeoutStopSec %q", n.get("StateDirectory"), n.get("ExecStart"), n.get("TimeoutStopSec"))
	}

	args := []string{"verify"}
	for _, name := range units {
		args = append(args, filepath.Join(tmp, name))
	}
	cmd := exec.Command(analyze, args...)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, name := range units {
		out := run(t, "", analyze, "security", "--offline=true", "--threshold=20", filepath.Join(tmp, name))
		lines := strings.Split(strings.TrimSpace(out), "\n")
		t.Logf("MEASURED %s: %s", name, strings.TrimPrefix(lines[len(lines)-1], "→ "))
	}
}

// TestSettingsNameRealFlags: every SWITCHBOARD_* variable in the units, their example
// environment files and the compose file is the variable of a flag of the role it is
// given to (a misspelt one would be silently ignored).
func TestSettingsNameRealFlags(t *testing.T) {
	bin := testenv.Binary(t)
	flags := map[string]map[string]bool{}
	for _, role := range []string{"node", "router", "monitor"} {
		flags[role] = roleFlags(t, bin, role)
	}
	dir := filepath.Join(root(t), "deploy")
	check := func(where, role, text string) {
		t.Helper()
		for _, m := range regexp.MustCompile(`\bSWITCHBOARD_([A-Z0-9_]+)`).FindAllStringSubmatch(text, -1) {
			flag := strings.ToLower(strings.ReplaceAll(m[1], "_", "-"))
			if !flags[role][flag] {
				t.Errorf("%s: %s is no flag of `switchboard %s` (--%s)", where, m[0], role, flag)
			}
		}
	}
	for file, role := range map[string]string{
		"systemd/switchboard-node@.service": "node", "systemd/node.env": "node", "systemd/node-node-1.env": "node",
		"systemd/switchboard-router.service": "router", "systemd/router.env": "router",
		"systemd/switchboard-monitor.service": "monitor", "systemd/monitor.env": "monitor",
	} {
		check(file, role, readFile(t, filepath.Join(dir, file)))
	}
	for _, svc := range composeServices(t) {
		if svc.role != "" {
			check("compose/docker-compose.yml "+svc.name, svc.role, strings.Join(svc.env, "\n"))
		}
	}
}

// roleFlags lists the flags `switchboard ROLE -h` prints.
func roleFlags(t *testing.T, bin, role string) map[string]bool {
	t.Helper()
	cmd := exec.Command(bin, role, "-h")
	out, _ := cmd.CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 5 {
		t.Fatalf("switchboard %s -h listed %d flags:\n%s", role, len(flags), out)
	}
	return flags
}

// TestReleaseBuild runs scripts/release.sh with a version and a commit and checks the
// binary: `switchboard version` (and --json) prints them, it is static (no ELF
// interpreter) and was built with CGO_ENABLED=0 and -trimpath (no path of this machine
// inside), and SHA256SUMS lists it.
func TestReleaseBuild(t *testing.T) {
	const version, commit = "v9.8.7-rc.1", "0123456789abcdef0123456789abcdef01234567"
	out := t.TempDir()
	platform := runtime.GOOS + "/" + runtime.GOARCH
	cmd := exec.Command("bash", filepath.Join(root(t), "scripts", "release.sh"), version)
	cmd.Env = append(os.Environ(), "OUT="+out, "PLATFORMS="+platform, "COMMIT="+commit)
	printed, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/release.sh: %v\n%s", err, printed)
	}
	bin := filepath.Join(out, "switchboard-"+version+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	if !strings.Contains(string(printed), bin) {
		t.Fatalf("release.sh printed %q, not %s", printed, bin)
	}

	text := run(t, "", bin, "version")
	if !strings.Contains(text, "switchboard "+version+"\n") || !strings.Contains(text, "commit "+commit) {
		t.Fatalf("switchboard version:\n%s", text)
	}
	var info struct{ Version, Commit, Go, Platform string }
	if err := json.Unmarshal([]byte(run(t, "", bin, "version", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Version != version || info.Commit != commit || info.Go != runtime.Version() || info.Platform != platform {
		t.Fatalf("switchboard version --json: %+v", info)
	}

	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	// (With -trimpath the toolchain does not record -ldflags: `version` above shows them.)
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Fatalf("build settings: %v", settings)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the release binary has an ELF interpreter: it is not static")
		}
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(root(t)+"/")) {
		t.Fatalf("the binary holds the build machine's path %s: not built with -trimpath", root(t))
	}
	sums := readFile(t, filepath.Join(out, "SHA256SUMS"))
	if !strings.Contains(sums, "  "+filepath.Base(bin)+"\n") {
		t.Fatalf("SHA256SUMS: %q", sums)
	}
	st, _ := os.Stat(bin)
	t.Logf("MEASURED release binary %s: %d MiB, static, -trimpath; `switchboard version`: %q", filepath.Base(bin), st.Size()>>20,
		strings.ReplaceAll(strings.TrimSpace(text), "\n", " / "))
}

// TestDockerfile checks what can be checked without Docker (it does not run here): a
// multi-stage build through scripts/release.sh, a final image FROM scratch with CA
// certificates, an unprivileged USER, and a .dockerignore that keeps .git and local data
// out of the context.
func TestDockerfile(t *testing.T) {
	src := readFile(t, filepath.Join(root(t), "Dockerfile"))
	var froms []string
	for _, m := range regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(src, -1) {
		froms = append(froms, m[1])
	}
	if len(froms) != 2 || !strings.HasPrefix(froms[0], "golang:") || froms[1] != "scratch" {
		t.Fatalf("stages %v: want a golang build stage and a scratch image", froms)
	}
	final := src[strings.LastIndex(src, "FROM scratch"):]
	for _, want := range []string{"scripts/release.sh", "ARG VERSION", "ARG COMMIT"} {
		if !strings.Contains(src, want) {
			t.Errorf("Dockerfile has no %q", want)
		}
	}
	if !strings.Contains(final, "/etc/ssl/certs/ca-certificates.crt") {
		t.Error("the final image has no CA certificates")
	}
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindStringSubmatch(final)
	if user == nil || strings.HasPrefix(user[1], "0") || strings.HasPrefix(user[1], "root") {
		t.Errorf("final image USER %v: want an unprivileged user", user)
	}
	ignore := readFile(t, filepath.Join(root(t), ".dockerignore"))
	for _, want := range []string{".git", ".switchboard", "deploy/compose/secrets"} {
		if !strings.Contains(ignore, want+"\n") {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

// TestComposeFile: the compose file runs the cluster deploy/README.md describes (three
// ZooKeeper servers in one ensemble, Redis without eviction, three nodes, a router, a
// monitor), every path it mounts exists, and make-secrets.sh creates the secrets it names,
// in the formats the roles read.
func TestComposeFile(t *testing.T) {
	byName := map[string]composeService{}
	for _, s := range composeServices(t) {
		byName[s.name] = s
	}
	for _, want := range []string{"zk1", "zk2", "zk3", "redis", "node-1", "node-2", "node-3", "router", "monitor-1"} {
		if _, ok := byName[want]; !ok {
			t.Errorf("no service %s", want)
		}
	}
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		if byName[n].role != "node" || !slicesContain(byName[n].command, n) {
			t.Errorf("%s runs %v", n, byName[n].command)
		}
	}
	compose := readFile(t, filepath.Join(root(t), "deploy", "compose", "docker-compose.yml"))
	for _, want := range []string{"server.1=zk1:2888:3888;2181 server.2=zk2:2888:3888;2181 server.3=zk3:2888:3888;2181",
		"noeviction", "ZOO_4LW_COMMANDS_WHITELIST: srvr"} {
		if !strings.Contains(compose, want) {
			t.Errorf("compose file has no %q", want)
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+- (\.\.?/[^:]+):`).FindAllStringSubmatch(compose, -1) {
		if strings.HasPrefix(m[1], "./secrets/") {
			continue
		}
		if _, err := os.Stat(filepath.Join(root(t), "deploy", "compose", m[1])); err != nil {
			t.Errorf("compose mounts %s: %v", m[1], err)
		}
	}

	// make-secrets.sh, in a copy of the directory.
	tmp := t.TempDir()
	copyFile(t, filepath.Join(root(t), "deploy", "compose", "make-secrets.sh"), filepath.Join(tmp, "make-secrets.sh"))
	run(t, tmp, "bash", "make-secrets.sh")
	for _, m := range regexp.MustCompile(`(?m)^\s+file: \./secrets/(\S+)`).FindAllStringSubmatch(compose, -1) {
		if st, err := os.Stat(filepath.Join(tmp, "secrets", m[1])); err != nil || st.Size() == 0 {
			t.Errorf("make-secrets.sh did not create secrets/%s: %v", m[1], err)
		}
	}
	tokens := strings.Fields(readFile(t, filepath.Join(tmp, "secrets", "api.tokens")))
	prom := strings.TrimSpace(readFile(t, filepath.Join(tmp, "secrets", "prometheus.token")))
	if len(tokens) != 4 || tokens[0] != "backend" || tokens[2] != "prometheus" || tokens[3] != prom || len(prom) < 16 {
		t.Fatalf("api.tokens %q, prometheus.token %q", tokens, prom)
	}
}

// composeService is what the checks read of a service: the switchboard role it runs (its
// command's first word) and its environment's variable names.
type composeService struct {
	name, role string
	command    []string
	env        []string
}

// composeServices reads the services of the compose file with a small line parser: the
// file keeps to one layout (two-space indents, flow lists for commands).
func composeServices(t *testing.T) []composeService {
	t.Helper()
	text := readFile(t, filepath.Join(root(t), "deploy", "compose", "docker-compose.yml"))
	anchors := map[string][]string{} // x-... anchor → its SWITCHBOARD_ variable names
	var out []composeService
	var cur *composeService
	anchor := ""
	inServices := false
	varRe := regexp.MustCompile(`\bSWITCHBOARD_[A-Z0-9_]+`)
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		switch {
		case strings.HasPrefix(line, "services:"):
			inServices = true
			continue
		case line != "" && line[0] != ' ':
			inServices = false
			anchor = ""
			if m := regexp.MustCompile(`^x-[a-z-]+: &([a-z-]+)`).FindStringSubmatch(line); m != nil {
				anchor = m[1]
			}
			continue
		}
		if !inServices {
			if anchor != "" {
				anchors[anchor] = append(anchors[anchor], varRe.FindAllString(line, -1)...)
			}
			continue
		}
		if m := regexp.MustCompile(`^  ([a-z0-9-]+):\s*$`).FindStringSubmatch(line); m != nil {
			out = append(out, composeService{name: m[1]})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil {
			continue
		}
		if m := regexp.MustCompile(`^\s+command: \[(.*)\]`).FindStringSubmatch(line); m != nil {
			for _, w := range strings.Split(m[1], ",") {
				cur.command = append(cur.command, strings.Trim(strings.TrimSpace(w), `"`))
			}
			if len(cur.command) > 0 && (cur.command[0] == "node" || cur.command[0] == "router" || cur.command[0] == "monitor") {
				cur.role = cur.command[0]
			}
		}
		cur.env = append(cur.env, varRe.FindAllString(line, -1)...)
		for _, ref := range regexp.MustCompile(`\*([a-z-]+)`).FindAllStringSubmatch(line, -1) {
			cur.env = append(cur.env, anchors[ref[1]]...)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	if len(out) < 9 {
		t.Fatalf("found %d compose services", len(out))
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	st, err := os.Stat(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, []byte(readFile(t, from)), st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
