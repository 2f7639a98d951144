package deploy_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestUnitsStartTheRoles does what systemd would do with each unit, short of the sandbox
// (there is no running systemd here): it reads the unit's ExecStart, Environment,
// EnvironmentFile (the example files in deploy/systemd) and LoadCredential settings,
// expands the specifiers (%i, %S, %d, %H), copies the credentials into a directory of
// their own, and runs the real binary with exactly that command line and environment
// against a real ZooKeeper ensemble and Redis — only the addresses are the test's, and the
// Redis password's pair of lines is left out as the unit says to (the test Redis has none).
// Each role must come up — the node ready, the router serving its API behind the token
// from its credential, the monitor leading, probing the node with the credentials of its
// environment file and exporting the ensemble's quorum — and stop on SIGTERM, cleanly,
// within the unit's TimeoutStopSec.
func TestUnitsStartTheRoles(t *testing.T) {
	bin := testenv.Binary(t)
	ens := testenv.Ensemble(t)
	red := testenv.Redis(t)
	dir := filepath.Join(root(t), "deploy", "systemd")

	// /etc/switchboard: the secrets the units load.
	etc := t.TempDir()
	apiToken := randomHex(t)
	for name, body := range map[string]string{
		"cluster.token": randomHex(t), "zk.auth": "switchboard:" + randomHex(t), "api.tokens": "backend " + apiToken + "\n",
	} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(body+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "passwd", filepath.Join(etc, "users.json"), "monitor", "--clients", "sb-probe.*", "--password-stdin")
	cmd.Stdin = strings.NewReader("probe-password\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("switchboard passwd: %v\n%s", err, out)
	}

	root := "/sb-units-" + randomHex(t)[:8]
	ports, err := backends.FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	common := map[string]string{
		"SWITCHBOARD_ZK": ens.ConnectString(), "SWITCHBOARD_REDIS": red.Addr, "SWITCHBOARD_ZK_ROOT": root,
		"SWITCHBOARD_REDIS_PREFIX": root[1:], "SWITCHBOARD_SESSION_TIMEOUT": "2s",
	}
	with := func(m map[string]string) map[string]string {
		for k, v := range common {
			m[k] = v
		}
		return m
	}

	node := startUnit(t, bin, filepath.Join(dir, "switchboard-node@.service"), "node-1", etc, with(map[string]string{
		"SWITCHBOARD_MQTT": addr(0), "SWITCHBOARD_INTERNAL": addr(1), "SWITCHBOARD_ADMIN": addr(2), "SWITCHBOARD_ADVERTISE": "",
	}))
	waitHTTP(t, node, "http://"+addr(2)+"/healthz", "", 200, `"ready":true`)

	router := startUnit(t, bin, filepath.Join(dir, "switchboard-router.service"), "", etc, with(map[string]string{
		"SWITCHBOARD_LISTEN": addr(3),
	}))
	waitHTTP(t, router, "http://"+addr(3)+"/healthz", "", 200, `"nodes":1`)
	waitHTTP(t, router, "http://"+addr(3)+"/metrics", "", 401, "")
	waitHTTP(t, router, "http://"+addr(3)+"/metrics", apiToken, 200, "switchboard_router_uncertain_deliveries_total 0")

	monitor := startUnit(t, bin, filepath.Join(dir, "switchboard-monitor.service"), "", etc, with(map[string]string{
		"SWITCHBOARD_ADMIN": addr(4), "SWITCHBOARD_PROBE_USERNAME": "monitor", "SWITCHBOARD_PROBE_PASSWORD": "probe-password",
		"SWITCHBOARD_INTERVAL": "250ms",
	}))
	waitHTTP(t, monitor, "http://"+addr(4)+"/metrics", "", 200, "switchboard_monitor_zk_quorum 1")
	waitHTTP(t, monitor, "http://"+addr(4)+"/metrics", "", 200, `switchboard_monitor_probe_ok{node="node-1",probe="end_to_end"} 1`)

	for _, p := range []*unitProc{monitor, router, node} {
		p.stop(t)
	}
}

// unitProc is a role started as its unit would start it.
type unitProc struct {
	name    string
	cmd     *exec.Cmd
	out     *os.File
	done    chan struct{}
	err     error
	timeout time.Duration // the unit's TimeoutStopSec
}

// startUnit runs the unit's ExecStart with the unit's environment, then the test's
// overrides (an empty value removes a variable).
func startUnit(t *testing.T, bin, path, instance, etc string, overrides map[string]string) *unitProc {
	t.Helper()
	u := readUnit(t, path)
	state, creds := t.TempDir(), t.TempDir()
	host, _ := os.Hostname()
	expand := strings.NewReplacer("%i", instance, "%S", state, "%d", creds, "%H", host).Replace

	for _, lc := range u.all("LoadCredential") {
		name, src, _ := strings.Cut(lc, ":")
		if name == "redis-password" {
			continue // the test Redis has no password: this pair of lines is left out
		}
		local := filepath.Join(etc, strings.TrimPrefix(src, "/etc/switchboard/"))
		b, err := os.ReadFile(local)
		if err != nil {
			t.Fatalf("%s: LoadCredential=%s: %v", u.name, lc, err)
		}
		if err := os.WriteFile(filepath.Join(creds, name), b, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{}
	for _, e := range u.all("Environment") {
		for _, kv := range strings.Fields(expand(e)) {
			k, v, _ := strings.Cut(kv, "=")
			if k != "SWITCHBOARD_REDIS_PASSWORD_FILE" {
				env[k] = v
			}
		}
	}
	// EnvironmentFile= overrides Environment=; later files override earlier ones.
	for _, ef := range u.all("EnvironmentFile") {
		optional := strings.HasPrefix(ef, "-")
		file := filepath.Join(filepath.Dir(path), filepath.Base(expand(strings.TrimPrefix(ef, "-"))))
		b, err := os.ReadFile(file)
		if err != nil {
			if optional && os.IsNotExist(err) {
				continue
			}
			t.Fatalf("%s: EnvironmentFile=%s: %v", u.name, ef, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: line %q is not VAR=value", file, line)
			}
			env[k] = v
		}
	}
	for k, v := range overrides {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	argv := strings.Fields(expand(u.get("ExecStart")))
	if argv[0] != "/usr/local/bin/switchboard" {
		t.Fatalf("%s: ExecStart %v", u.name, argv)
	}
	if sd := u.get("StateDirectory"); sd != "" {
		if err := os.MkdirAll(filepath.Join(state, expand(sd)), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	p := &unitProc{name: strings.TrimSuffix(u.name, ".service") + instance, done: make(chan struct{})}
	var err error
	if p.timeout, err = time.ParseDuration(u.get("TimeoutStopSec")); err != nil {
		t.Fatalf("%s: TimeoutStopSec: %v", u.name, err)
	}
	p.cmd = exec.Command(bin, argv[1:]...)
	p.cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	if wd := u.get("WorkingDirectory"); wd != "" {
		p.cmd.Dir = expand(wd)
	}
	if p.out, err = os.Create(filepath.Join(t.TempDir(), p.name+".log")); err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.out.Name())
			t.Logf("--- %s (%s) ---\n%s", p.name, strings.Join(argv, " "), b)
		}
		p.out.Close()
	})
	return p
}

// stop sends SIGTERM, as systemctl stop does, and waits up to the unit's TimeoutStopSec.
func (p *unitProc) stop(t *testing.T) {
	t.Helper()
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(p.timeout):
		t.Fatalf("%s did not stop within TimeoutStopSec=%v", p.name, p.timeout)
	}
	if p.err != nil {
		t.Fatalf("%s exited with %v after SIGTERM", p.name, p.err)
	}
	t.Logf("MEASURED %s: SIGTERM → exited in %v (TimeoutStopSec %v)", p.name, time.Since(start).Round(time.Millisecond), p.timeout)
}

// waitHTTP polls url (with a bearer token, if given) until it answers status with a body
// containing want.
func waitHTTP(t *testing.T, p *unitProc, url, token string, status int, want string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		select {
		case <-p.done:
			t.Fatalf("%s exited: %v", p.name, p.err)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != status || !strings.Contains(string(b), want) {
			return fmt.Errorf("%s: %d, want %d with %q; body %.300s", url, resp.StatusCode, status, want, b)
		}
		return nil
	})
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
