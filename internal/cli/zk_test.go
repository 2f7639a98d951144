package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/cli"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/zkstat"
)

var shared testenv.Shared

// The commands run in-process and start goroutines (zkstat.Query, the ZooKeeper client), so
// the package checks for leaks once every test has passed.
func TestMain(m *testing.M) { shared.MainLeakCheck(m) }

// run runs the command line in-process, bounded by d.
func run(t *testing.T, d time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out, errOut bytes.Buffer
	code = cli.Run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestZKStatusHealthy: exit 0 and a table row per server with the mode the server itself
// reports; exactly one leader; a quorum line naming it.
func TestZKStatusHealthy(t *testing.T) {
	e := shared.Ensemble(t)
	code, out, errOut := run(t, 20*time.Second, "zk", "status", "--zk", e.ConnectString())
	if code != 0 {
		t.Fatalf("zk status exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1+3+1 || !strings.HasPrefix(lines[0], "SERVER") || !strings.Contains(lines[0], "MODE") {
		t.Fatalf("want a header, 3 server rows and a quorum line; got:\n%s", out)
	}
	modes := map[string]string{}
	for _, l := range lines[1:4] {
		f := strings.Fields(l)
		if len(f) < 2 {
			t.Fatalf("short row %q", l)
		}
		modes[f[0]] = f[1]
	}
	// Ask each server directly: the table must show what it says of itself.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leader := ""
	for _, addr := range e.Addrs() {
		s, err := zkstat.Srvr(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		if modes[addr] != s.Mode {
			t.Fatalf("table shows %s as %q, the server says %q\n%s", addr, modes[addr], s.Mode, out)
		}
		if s.Mode == "leader" {
			leader = addr
		}
	}
	if leader == "" {
		t.Fatalf("no leader in\n%s", out)
	}
	if want := "quorum: yes (3 of 3 serving, leader " + leader + ")"; lines[4] != want {
		t.Fatalf("last line %q, want %q", lines[4], want)
	}
}

// TestZKStatusNoneAnswers: no server answers; exit 1 and the error names every server that
// could not be asked.
func TestZKStatusNoneAnswers(t *testing.T) {
	addrs := testenv.RefusedAddrs(t, 2)
	code, out, errOut := run(t, 20*time.Second, "zk", "status", "--zk", strings.Join(addrs, ","), "--timeout", "2s")
	if code == 0 {
		t.Fatalf("zk status with nothing listening exited 0:\n%s", out)
	}
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the command ran and found no quorum)", code)
	}
	for _, a := range addrs {
		if !strings.Contains(errOut, a) {
			t.Fatalf("stderr does not name the unreachable server %s:\n%s", a, errOut)
		}
		if !strings.Contains(out, a) {
			t.Fatalf("table has no row for %s:\n%s", a, out)
		}
	}
	if !strings.Contains(out, "quorum: NO (0 of 2 serving)") {
		t.Fatalf("stdout does not say there is no quorum:\n%s", out)
	}
}

// TestZKStatusFollowersWithoutALeader: listed with the ensemble's two followers, its
// leader's place taken by a server that accepts connections and never answers (a frozen
// leader, whose followers say they follow it until they notice), zk status finds no quorum
// and says no leader answers, rather than that two of three serve.
func TestZKStatusFollowersWithoutALeader(t *testing.T) {
	e := shared.Ensemble(t)
	ctx := testenv.Context(t, 10*time.Second)
	leader, err := e.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	frozen := testenv.SilentAddr(t)
	var addrs []string
	for _, s := range e.Servers() {
		if s == leader {
			addrs = append(addrs, frozen)
		} else {
			addrs = append(addrs, s.ClientAddr)
		}
	}
	code, out, errOut := run(t, 20*time.Second, "zk", "status", "--zk", strings.Join(addrs, ","), "--timeout", "1s")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (no quorum):\n%s%s", code, out, errOut)
	}
	if want := "quorum: NO (no leader answers; 2 of 3 answer as its followers)"; !strings.Contains(out, want) {
		t.Fatalf("stdout does not say %q:\n%s", want, out)
	}
	if !strings.Contains(errOut, "no leader answers") || !strings.Contains(errOut, frozen) {
		t.Fatalf("stderr does not say no leader answers and name %s:\n%s", frozen, errOut)
	}
}

// TestZKStatusJSON: --json prints a zkstat.Ensemble; with one server of three unreachable
// the quorum still holds and the unreachable one carries its error.
func TestZKStatusJSON(t *testing.T) {
	e := shared.Ensemble(t)
	code, out, errOut := run(t, 20*time.Second, "zk", "status", "--zk", e.ConnectString(), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var st zkstat.Ensemble
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("decode --json output: %v\n%s", err, out)
	}
	if !st.Quorum || st.Serving != 3 || st.Leader == "" || len(st.Servers) != 3 {
		t.Fatalf("--json = %+v, want a quorum of 3 with a leader", st)
	}
	for i, s := range st.Servers {
		if s.Addr != e.Addrs()[i] || !s.Serving() || s.Version == "" {
			t.Fatalf("server %d = %+v", i, s)
		}
	}

	// List the leader, one follower and an address nobody listens on: two of three serve,
	// so there is a quorum, and the dead one carries its error.
	var follower string
	for _, s := range st.Servers {
		if s.Mode == "follower" {
			follower = s.Addr
			break
		}
	}
	dead := testenv.RefusedAddrs(t, 1)[0]
	code, out, errOut = run(t, 20*time.Second, "zk", "status", "--zk", st.Leader+","+follower+","+dead, "--json", "--timeout", "2s")
	if code != 0 {
		t.Fatalf("two of three serving: exit %d: %s\n%s", code, errOut, out)
	}
	var part zkstat.Ensemble
	if err := json.Unmarshal([]byte(out), &part); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	if !part.Quorum || part.Serving != 2 || part.Servers[2].Addr != dead || part.Servers[2].Error == "" ||
		!strings.Contains(part.Servers[2].Error, dead) {
		t.Fatalf("--json = %+v, want a quorum of 2 serving and an error naming %s", part, dead)
	}
}

// TestZKStatusUsage: a missing --zk or subcommand is a usage error (exit 2).
func TestZKStatusUsage(t *testing.T) {
	for _, args := range [][]string{{"zk"}, {"zk", "stat"}, {"zk", "status"}} {
		code, _, errOut := run(t, 5*time.Second, args...)
		if code != 2 || errOut == "" {
			t.Fatalf("%v: exit %d, stderr %q; want 2 with a message", args, code, errOut)
		}
	}
}
