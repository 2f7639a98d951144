package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeConfig writes a config file into a fresh directory and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// probeRole runs a role's command with args until it has validated its configuration, and
// returns its flags there.
func probeRole(t *testing.T, role string, args ...string) (*flag.FlagSet, string, error) {
	t.Helper()
	var stderr bytes.Buffer
	p := &probe{stage: probeValidated}
	err := runRole(role, env{stdout: &bytes.Buffer{}, stderr: &stderr}, p, args)
	if errors.Is(err, errProbed) {
		return p.fs, stderr.String(), nil
	}
	if err == nil {
		t.Fatalf("%s ran past its checks", role)
	}
	return p.fs, stderr.String(), err
}

func flagValue(t *testing.T, fs *flag.FlagSet, name string) string {
	t.Helper()
	f := fs.Lookup(name)
	if f == nil {
		t.Fatalf("no flag %s", name)
	}
	return f.Value.String()
}

// TestConfigPrecedence: a flag beats its environment variable, which beats the role's
// section, which beats the shared section, which beats the default.
func TestConfigPrecedence(t *testing.T) {
	path := writeConfig(t, `
coordination:
  zk: 127.0.0.1:1
store:
  redis: 127.0.0.1:2
  redis-prefix: from-store
  redis-master: from-store
router:
  no-auth: true
  redis-master: from-router
  max-ttl: 48h
  default-ttl: 1h
`)
	t.Setenv("SWITCHBOARD_MAX_TTL", "72h")
	t.Setenv("SWITCHBOARD_DEFAULT_TTL", "2h")
	fs, _, err := probeRole(t, "router", "--config", path, "--default-ttl", "3h")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"max-wait":     "1s",          // default
		"redis-prefix": "from-store",  // shared section
		"redis-master": "from-router", // the role's section over the shared one
		"max-ttl":      "72h0m0s",     // environment over the file
		"default-ttl":  "3h0m0s",      // flag over the environment
		"zk":           "127.0.0.1:1",
	} {
		if got := flagValue(t, fs, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// TestConfigFromEnvironment: SWITCHBOARD_CONFIG names the file as --config does.
func TestConfigFromEnvironment(t *testing.T) {
	path := writeConfig(t, "coordination:\n  etcd: 127.0.0.1:1\nstore:\n  redis: 127.0.0.1:2\nrouter:\n  no-auth: true\n  listen: 127.0.0.1:9\n")
	t.Setenv("SWITCHBOARD_CONFIG", path)
	fs, _, err := probeRole(t, "router")
	if err != nil {
		t.Fatal(err)
	}
	if got := flagValue(t, fs, "listen"); got != "127.0.0.1:9" {
		t.Fatalf("listen = %q from SWITCHBOARD_CONFIG", got)
	}
}

// TestConfigErrors: every mistake is reported at once, each naming the file, line and
// column, the section and the key, and what would be right.
func TestConfigErrors(t *testing.T) {
	path := writeConfig(t, `log:
  log-level: debug
coordination:
  sesion-timeout: 5s
  id: x
store:
  redis: redis://user:hunter2@redis:6379/0
  redis-password: hunter2
node:
  max-wait: 1x
  window: many
  allow-anonymous: yes
  windoe: 3
  mqtt: {a: b}
router:
  window: 3
monitor:
  probe-password: hunter2
nodes:
  id: 1
`)
	_, err := loadConfigFile(path)
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		path + `:4:3: coordination: unknown key "sesion-timeout" (did you mean "session-timeout"?)`,
		path + `:5:3: coordination: unknown key "id" (it is a key of node, router, monitor)`,
		path + `:7:10: store.redis: the password in this URL is a secret`, "redis-password-file or SWITCHBOARD_REDIS_PASSWORD",
		path + `:8:3: store.redis-password: a secret is not accepted in a config file; give redis-password-file (a file holding it) or SWITCHBOARD_REDIS_PASSWORD`,
		path + `:10:13: node.max-wait: invalid value "1x": want a duration`,
		path + `:11:11: node.window: invalid value "many": want an integer`,
		path + `:12:20: node.allow-anonymous: invalid value "yes": want true or false`,
		path + `:13:3: node: unknown key "windoe" (did you mean "window"?)`,
		path + `:14:9: node.mqtt: want a value or a list of values, not a mapping`,
		path + `:16:3: router: unknown key "window" (it is a key of node)`,
		path + `:18:3: monitor.probe-password: a secret is not accepted in a config file; give SWITCHBOARD_PROBE_PASSWORD`,
		path + `:19:1: unknown section "nodes" (did you mean "node"?)`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the errors lack %q", want)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("an error shows the secret:\n%s", msg)
	}
	if t.Failed() {
		t.Logf("errors:\n%s", msg)
	}
}

// TestConfigRoleRefusesBadFile: a role given a bad file refuses to start (exit status 2)
// with the file's errors, before it binds anything.
func TestConfigRoleRefusesBadFile(t *testing.T) {
	path := writeConfig(t, "router:\n  lisen: 127.0.0.1:0\n")
	_, _, err := probeRole(t, "router", "--config", path)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `unknown key "lisen" (did you mean "listen"?)`) {
		t.Fatalf("got %v", err)
	}
	if _, _, err := probeRole(t, "router", "--config", path+".missing"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestConfigSyntax: YAML details: lists join with commas, a key without a value sets
// nothing, an empty section or file is fine, a repeated key or a second document is not.
func TestConfigSyntax(t *testing.T) {
	f, err := parseConfigFile("f.yaml", []byte("coordination:\n  zk: [a:1, b:2]\n  etcd:\nnode:\nstore: ~\n"))
	if err != nil {
		t.Fatal(err)
	}
	if en, ok := f.lookup("node", "zk"); !ok || en.value != "a:1,b:2" {
		t.Fatalf("zk: %+v", en)
	}
	if _, ok := f.lookup("node", "etcd"); ok {
		t.Fatal("a key without a value is set")
	}
	if _, err := parseConfigFile("f.yaml", nil); err != nil {
		t.Fatalf("empty file: %v", err)
	}
	for body, want := range map[string]string{
		"node:\n  id: a\n  id: b\n":       "f.yaml:3:3: node.id appears twice (first at line 2)",
		"node:\n  id: a\n---\nnode: {}\n": "one YAML document expected",
		"- node\n":                        "want a mapping of sections",
		"node: [a]\n":                     "node: want a mapping of keys to values",
		"node:\n  id: [a, [b]]\n":         "a list holds plain values only",
		"node:\n\tid: a\n":                "f.yaml:2:1: a tab indents this line: YAML indents with spaces only",
		"node:\n  id: [a\n":               "f.yaml: yaml: line 1: did not find expected",
	} {
		f, err := parseConfigFile("f.yaml", []byte(body))
		if err == nil {
			err = f.err()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", body, err, want)
		}
	}
}

// TestRolesStopAtValidated: every role's command has its checkpoint after its checks and
// before it binds or dials: probed with real addresses, nothing is listening on them
// after, and an invalid setting is still refused by the role's own check.
func TestRolesStopAtValidated(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	path := writeConfig(t, `coordination:
  zk: 127.0.0.1:1
store:
  redis: 127.0.0.1:2
node:
  id: node-1
  allow-anonymous: true
  mqtt: `+addr+`
  internal: 127.0.0.1:0
  admin: 127.0.0.1:0
router:
  no-auth: true
  listen: `+addr+`
monitor:
  admin: `+addr+`
up:
  api: `+addr+`
  data-dir: `+filepath.Join(t.TempDir(), "up")+`
`)
	for _, role := range roleNames() {
		if _, stderr, err := probeRole(t, role, "--config", path); err != nil {
			t.Fatalf("%s: %v\n%s", role, err, stderr)
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s listens after its probe", role)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "up")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("up's probe created its data dir: %v", err)
	}
	// The role's own checks run: node's --id is checked by node.Config.Validate.
	if _, _, err := probeRole(t, "node", "--config", path, "--id", "bad/id"); err == nil || !strings.Contains(err.Error(), "--id") {
		t.Fatalf("a bad --id passed: %v", err)
	}
}

// TestConfigExampleUpToDate: the committed example is what `switchboard config example`
// prints, so it documents every setting with its current default.
func TestConfigExampleUpToDate(t *testing.T) {
	var b bytes.Buffer
	if err := writeExample(&b, false); err != nil {
		t.Fatal(err)
	}
	const committed = "../../deploy/switchboard.example.yaml"
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Fatalf("%s differs from what the flags produce; regenerate it:\n\n"+
			"  go run ./cmd/switchboard config example > deploy/switchboard.example.yaml\n\nfirst difference: %s",
			committed, firstDiff(string(got), b.String()))
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: committed %q, generated %q", i+1, x, y)
		}
	}
	return "none"
}

// TestConfigExampleComplete: the example with every key uncommented loads cleanly (each
// key exists, each default is a value its flag takes), and it has every setting of every
// role: each flag is a key of the role's section or of a shared one.
func TestConfigExampleComplete(t *testing.T) {
	var b bytes.Buffer
	if err := writeExample(&b, true); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, b.String())
	f, err := loadConfigFile(path)
	if err != nil {
		t.Fatalf("the active example does not load: %v", err)
	}
	for _, role := range roleNames() {
		fs, err := roleFlags(role)
		if err != nil {
			t.Fatal(err)
		}
		fs.VisitAll(func(fl *flag.Flag) {
			if _, secret := fl.Value.(*secretValue); secret || fl.Name == "config" {
				return
			}
			name := fl.Name
			if now, ok := flagAliases[name]; ok {
				name = now // an old name is documented under its name now
			}
			if _, ok := f.lookup(role, name); !ok {
				t.Errorf("the example lacks %s's %s", role, name)
			}
		})
	}
}
