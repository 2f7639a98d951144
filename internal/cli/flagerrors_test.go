package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestWaitWithoutADuration: --wait of release and quarantine takes a duration; given last
// without one (the arguments are reordered to put flags first) the error says so, instead
// of the flag package's `invalid value "--" for flag -wait`, and a value that is not a
// duration is answered the same way. Neither reaches for ZooKeeper.
func TestWaitWithoutADuration(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"release", "node-2", "--wait"}, "switchboard release: --wait needs a duration such as 30s"},
		{[]string{"quarantine", "node-2", "--reason", "disk", "--wait"}, "switchboard quarantine: --wait needs a duration such as 30s"},
		{[]string{"release", "node-2", "--wait", "--zk", "127.0.0.1:1"}, "(--wait takes a duration such as 30s)"},
		{[]string{"status", "--zk"}, "switchboard status: --zk needs a value"},
	} {
		code, _, errOut := run(t, 10*time.Second, tc.args...)
		if code == 0 {
			t.Fatalf("%q exited 0", tc.args)
		}
		if !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: error lacks %q:\n%s", tc.args, tc.want, errOut)
		}
		if strings.Contains(errOut, `invalid value "--"`) {
			t.Errorf("%q: error takes the separator for the value:\n%s", tc.args, errOut)
		}
	}
}

// TestCoordinationErrorsNameTheFlag: a coordination setting the backend refuses is named by
// its flag, as `config check` needs to trace it to its key (a trial found "etcd:
// SessionTimeout 1s is too short"), for both backends.
func TestCoordinationErrorsNameTheFlag(t *testing.T) {
	base := []string{"node", "--id", "n1", "--allow-anonymous", "--redis", "127.0.0.1:1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--etcd", "127.0.0.1:1", "--session-timeout", "1s"}, "etcd: --session-timeout 1s is too short (minimum 2s)"},
		{[]string{"--zk", "127.0.0.1:1", "--session-timeout", "100ms"}, "zk: --session-timeout 100ms is too short (minimum 500ms)"},
		{[]string{"--zk", "127.0.0.1:1", "--coord-root", "bad/"}, `zk: --coord-root "bad/" must be an absolute key path`},
	} {
		code, _, errOut := run(t, 10*time.Second, append(base, tc.args...)...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage)", tc.args, code)
		}
		if !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: error lacks %q:\n%s", tc.args, tc.want, errOut)
		}
	}
}

// TestUpAPIOnANodesPort: `up --api` on a port one of its own nodes takes is refused before
// anything starts, naming both flags, rather than failing later as if another program held
// the node's port (a trial found "MQTTAddr ... address already in use" for --api :1884).
func TestUpAPIOnANodesPort(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--api", "127.0.0.1:1884"}, "--api 127.0.0.1:1884: port 1884 is node-2's MQTT port (--mqtt-port 1883 gives the 3 nodes 1883-1885)"},
		{[]string{"--ws-port", "8080"}, "--api 127.0.0.1:8080: port 8080 is node-1's WebSocket port (--ws-port 8080 gives the 3 nodes 8080-8082)"},
		{[]string{"--api", "127.0.0.1"}, "--api 127.0.0.1: want HOST:PORT, such as 127.0.0.1:8080"}, // exit 1 before
	} {
		code, _, errOut := run(t, 10*time.Second, append([]string{"up", "--data-dir", t.TempDir()}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("up %q: exit %d, want 2 with %q:\n%s", tc.args, code, tc.want, errOut)
		}
	}
	// Off loopback, the API (which takes every request without a token) is refused first.
	for _, api := range []string{"192.0.2.1:1884", ":18080", "0.0.0.0:18080", "[::]:18080"} {
		code, _, errOut := run(t, 10*time.Second, "up", "--data-dir", t.TempDir(), "--api", api)
		if code != 2 || !strings.Contains(errOut, "--api "+api+": up's API takes requests without a token, so it listens on loopback only") {
			t.Errorf("up --api %s: exit %d, want 2 naming loopback:\n%s", api, code, errOut)
		}
	}
}

// TestNodeDataDirMustExist: a node whose --data-dir is not there is refused at start (and
// by `config check`): its free space is a readiness check, and such a node was registered
// and unready for good without a word.
func TestNodeDataDirMustExist(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "not-made")
	code, _, errOut := run(t, 10*time.Second, "node", "--id", "n1", "--allow-anonymous", "--data-dir", missing,
		"--zk", "127.0.0.1:1", "--redis", "127.0.0.1:1")
	if code != 2 || !strings.Contains(errOut, "--data-dir \""+missing+"\": stat") {
		t.Fatalf("exit %d, want 2 naming --data-dir:\n%s", code, errOut)
	}
}

// TestAPIWithoutAScheme: send and mailbox take --api as up does, host:port, besides a URL
// (a trial's `--api localhost:8080` got `unsupported protocol scheme "localhost"`).
func TestAPIWithoutAScheme(t *testing.T) {
	addr := testenv.RefusedAddr(t)
	for _, args := range [][]string{{"send", "--api", addr, "--to", "x", "hi"}, {"mailbox", "--api", addr + "/", "--to", "x"}} {
		code, _, errOut := run(t, 10*time.Second, args...)
		if code == 0 || strings.Contains(errOut, "unsupported protocol scheme") || !strings.Contains(errOut, "http://"+addr+"/v1/") {
			t.Errorf("%q: exit %d, want the request to http://%s/v1/... refused:\n%s", args, code, addr, errOut)
		}
	}
}

// TestUpStoreThatCannotOpen: an embedded store that cannot be opened (here a file where its
// directory goes; a trial's was on a full disk) ends up with its error. It used to panic in
// the clean-up, which closed the store that was never opened.
func TestUpStoreThatCannotOpen(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "store"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ports, err := backends.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	// One node on a free port: the default 1883 may be taken on this machine.
	code, _, errOut := run(t, 20*time.Second, "up", "--data-dir", dir, "--api", testenv.RefusedAddr(t),
		"--nodes", "1", "--mqtt-port", fmt.Sprint(ports[0]))
	if code != 1 || !strings.Contains(errOut, "open embedded store in directory") {
		t.Fatalf("exit %d, want 1 with the store's error:\n%s", code, errOut)
	}
}

// TestHelpIsNotAnError: `zk -h` prints its usage and exits 0, as every other command's -h
// does (it exited 2), and the help of --redis-tls-ca says what a client's CA does: it
// verifies the server (it said peers must present a certificate it signed).
func TestHelpIsNotAnError(t *testing.T) {
	code, out, errOut := run(t, 10*time.Second, "zk", "-h")
	if code != 0 || !strings.Contains(out, "usage: switchboard zk status") {
		t.Fatalf("zk -h: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	code, out, errOut = run(t, 10*time.Second, "node", "-h")
	help := out + errOut
	if code != 0 || !strings.Contains(help, "CA file that verifies the server's certificate, for connections to Redis") {
		t.Fatalf("node -h: exit %d, --redis-tls-ca help:\n%s", code, help)
	}
}

// TestUpAuthFileReadFirst: up reads --auth-file before it starts anything, so a missing or
// bad file is its only error (it came after the embedded etcd's start, behind its log).
func TestUpAuthFileReadFirst(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(bad, []byte("topic sideways x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{filepath.Join(t.TempDir(), "missing"), bad} {
		data := t.TempDir()
		code, _, errOut := run(t, 10*time.Second, "up", "--data-dir", data, "--auth-file", file)
		if code != 2 || !strings.Contains(errOut, file) {
			t.Errorf("up --auth-file %s: exit %d, want 2 naming the file:\n%s", file, code, errOut)
		}
		if entries, _ := os.ReadDir(data); len(entries) > 0 {
			t.Errorf("up --auth-file %s: started something in --data-dir before refusing: %v", file, entries)
		}
	}
}
