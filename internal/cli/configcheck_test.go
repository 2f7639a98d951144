package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func configFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigCheckValid: `config check` prints each role's effective configuration with
// each value's source, and redacts every secret: one from the environment, a URL's
// password, a key named like a secret; a *-file key shows its path.
func TestConfigCheckValid(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "cluster.token")
	if err := os.WriteFile(tokenFile, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := configFile(t, `log:
  log-level: debug
coordination:
  zk: [127.0.0.1:1, 127.0.0.1:2]
store:
  redis: 127.0.0.1:3
router:
  no-auth: true
  cluster-token-file: `+tokenFile+`
  log-level: info
monitor:
  probe-username: probe
`)
	t.Setenv("SWITCHBOARD_REDIS_PASSWORD", "hunter2-from-env")
	t.Setenv("SWITCHBOARD_PROBE_PASSWORD", "hunter3-from-env")
	t.Setenv("SWITCHBOARD_MAX_TTL", "48h")
	code, out, errOut := run(t, 10*time.Second, "config", "check", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"# router: valid.", "# monitor: valid.",
		`log-level: "info"`, path + ":10:3", // router's own section
		`log-level: "debug"`, path + ":2:3", // monitor: the shared one
		`zk: "127.0.0.1:1,127.0.0.1:2"`,
		"max-ttl: 48h0m0s", "# SWITCHBOARD_MAX_TTL",
		"# redis-password: <redacted>", "# SWITCHBOARD_REDIS_PASSWORD",
		"# probe-password: <redacted>",
		`cluster-token-file: "` + tokenFile + `"`,
		"max-wait: 1s", "# default",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out+errOut, "hunter") {
		t.Errorf("a secret is printed")
	}
	if strings.Count(out, "\n---\n") != 1 {
		t.Errorf("want two documents (router, monitor)")
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}

	// --role picks one; a URL's password (from the environment) is redacted.
	t.Setenv("SWITCHBOARD_REDIS", "redis://app:hunter4@127.0.0.1:3/1")
	t.Setenv("SWITCHBOARD_REDIS_PASSWORD", "") // one password: the URL's
	code, out, errOut = run(t, 10*time.Second, "config", "check", "--role", "router", path)
	if code != 0 || strings.Contains(out, "# monitor") || !strings.Contains(out, `redis: "redis://app:xxxxx@127.0.0.1:3/1"`) ||
		strings.Contains(out+errOut, "hunter4") {
		t.Fatalf("--role router: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestConfigCheckInvalid: a file the roles would refuse fails the check (exit 1) with the
// roles' own errors, each flag it names traced to its key and line.
func TestConfigCheckInvalid(t *testing.T) {
	path := configFile(t, `coordination:
  zk: 127.0.0.1:1
store:
  redis: 127.0.0.1:3
node:
  id: bad/id
  allow-anonymous: true
router:
  no-auth: true
  max-connections: 0
`)
	code, out, errOut := run(t, 10*time.Second, "config", "check", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		path + " is not valid", "node: --id", "--id is node.id: " + path + ":6:3",
		"router: ", "--max-connections is router.max-connections: " + path + ":10:3",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	// A bad key is the file's own error, before any role runs.
	bad := configFile(t, "node:\n  idd: x\n")
	code, _, errOut = run(t, 10*time.Second, "config", "check", bad)
	if code != 1 || !strings.Contains(errOut, bad+`:2:3: node: unknown key "idd" (did you mean "id"?)`) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// Only shared sections: which role?
	shared := configFile(t, "coordination:\n  zk: 127.0.0.1:1\n")
	if code, _, errOut = run(t, 10*time.Second, "config", "check", shared); code != 2 || !strings.Contains(errOut, "--role") {
		t.Fatalf("no role section: exit %d: %s", code, errOut)
	}
	if code, _, errOut = run(t, 10*time.Second, "config", "check", "--role", "nodes", shared); code != 2 {
		t.Fatalf("--role nodes: exit %d: %s", code, errOut)
	}
}

// TestConfigExampleCommand: `config example` prints the example, which names every
// shared section and role.
func TestConfigExampleCommand(t *testing.T) {
	code, out, errOut := run(t, 10*time.Second, "config", "example")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, s := range []string{"\nlog:\n", "\ncoordination:\n", "\nstore:\n", "\nnode:\n", "\nrouter:\n", "\nmonitor:\n", "\nup:\n",
		"  # max-wait: 1s\n", "  # session-timeout: 5s\n"} {
		if !strings.Contains(out, s) {
			t.Errorf("the example lacks %q", s)
		}
	}
	if code, _, _ := run(t, 10*time.Second, "config"); code != 2 {
		t.Errorf("config without a subcommand: exit %d", code)
	}
}
