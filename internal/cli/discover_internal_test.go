package cli

import (
	"bytes"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// inUpDir makes a fresh directory the working directory, with up's data dir in it.
func inUpDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.Mkdir(defaultUpDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func coordFlags(t *testing.T, args ...string) (*flag.FlagSet, *coordOptions) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o coordOptions
	o.register(fs)
	fs.String("api", "http://127.0.0.1:8080", "")
	if err := parse(fs, args); err != nil {
		t.Fatal(err)
	}
	return fs, &o
}

// TestDiscovery: the file up writes is found from its directory and fills the
// coordination endpoint and the API unless a flag names them, saying so on stderr; it is
// removed by the function writeDiscovery returns.
func TestDiscovery(t *testing.T) {
	inUpDir(t)
	d := discovery{Version: 1, PID: os.Getpid(), API: "http://127.0.0.1:18080", Etcd: "127.0.0.1:12379", Root: "/sb-test"}
	remove, err := writeDiscovery(defaultUpDir, d)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	e := env{stdout: io.Discard, stderr: &stderr}

	fs, o := coordFlags(t)
	if err := o.discover(fs, e); err != nil {
		t.Fatal(err)
	}
	if o.etcd != d.Etcd || o.servers != "" || o.root != "/sb-test" {
		t.Fatalf("discovered etcd %q zk %q root %q", o.etcd, o.servers, o.root)
	}
	want := "using the local cluster of `switchboard up` in ./.switchboard (pid " + strconv.Itoa(os.Getpid()) + ")"
	if !strings.Contains(stderr.String(), want) {
		t.Fatalf("stderr %q lacks %q", stderr.String(), want)
	}
	api := "http://127.0.0.1:8080"
	if err := discoverAPI(fs, e, &api); err != nil || api != d.API {
		t.Fatalf("api %q %v", api, err)
	}

	// A flag (or its environment variable) wins, silently.
	stderr.Reset()
	fs, o = coordFlags(t, "--zk", "127.0.0.1:2181", "--api", "http://x:1")
	if err := o.discover(fs, e); err != nil || o.etcd != "" || o.servers != "127.0.0.1:2181" || o.root != "/switchboard" {
		t.Fatalf("with --zk: etcd %q zk %q root %q %v", o.etcd, o.servers, o.root, err)
	}
	api = "http://x:1"
	if err := discoverAPI(fs, e, &api); err != nil || api != "http://x:1" {
		t.Fatalf("with --api: %q %v", api, err)
	}
	t.Setenv("SWITCHBOARD_ETCD", "127.0.0.1:2")
	fs, o = coordFlags(t)
	if err := o.discover(fs, e); err != nil || o.etcd != "127.0.0.1:2" {
		t.Fatalf("with SWITCHBOARD_ETCD: %q %v", o.etcd, err)
	}
	if stderr.Len() != 0 {
		t.Fatalf("announced with flags given: %q", stderr.String())
	}

	remove()
	if _, err := os.Stat(filepath.Join(defaultUpDir, discoveryName)); !os.IsNotExist(err) {
		t.Fatalf("not removed: %v", err)
	}
}

// TestDiscoveryStale: a file whose up is gone (killed) is ignored with a note; no file is
// not an error.
func TestDiscoveryStale(t *testing.T) {
	inUpDir(t)
	var stderr bytes.Buffer
	e := env{stdout: io.Discard, stderr: &stderr}
	if d, err := localCluster(e); d != nil || err != nil || stderr.Len() != 0 {
		t.Fatalf("no file: %v %v %q", d, err, stderr.String())
	}
	// A process that has exited: its pid names no process (until reused, which the note
	// and the failing connection would then reveal).
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	if _, err := writeDiscovery(defaultUpDir, discovery{Version: 1, PID: dead, Etcd: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	d, err := localCluster(e)
	if d != nil || err != nil || !strings.Contains(stderr.String(), "is not running") {
		t.Fatalf("stale file: %v %v %q", d, err, stderr.String())
	}
	stderr.Reset()
	if err := os.WriteFile(filepath.Join(defaultUpDir, discoveryName), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d, err := localCluster(e); d != nil || err != nil || !strings.Contains(stderr.String(), "not a discovery file") {
		t.Fatalf("garbage: %v %v %q", d, err, stderr.String())
	}
	// An up that stopped cleanly removed its file but left its data: the note says that up
	// is not running here, where the usage error alone read as if it need not be.
	stderr.Reset()
	if err := os.Remove(filepath.Join(defaultUpDir, discoveryName)); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockDataDir(defaultUpDir)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if d, err := localCluster(e); d != nil || err != nil ||
		!strings.Contains(stderr.String(), "holds the data of a `switchboard up` that is not running") {
		t.Fatalf("stopped up: %v %v %q", d, err, stderr.String())
	}
}

// TestDialable: an address bound on every interface is dialled on loopback.
func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		":8080": "127.0.0.1:8080", "0.0.0.0:8080": "127.0.0.1:8080", "[::]:8080": "127.0.0.1:8080",
		"127.0.0.1:8080": "127.0.0.1:8080", "[::1]:9": "[::1]:9", "host:1": "host:1",
	} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}
