package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// runIn runs the switchboard binary to completion in dir (the operator's working
// directory) and returns its exit code and output.
func runIn(t *testing.T, dir string, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), stdout.String(), stderr.String()
		}
		if err != nil {
			t.Fatalf("switchboard %v: %v", args, err)
		}
		return 0, stdout.String(), stderr.String()
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("switchboard %v did not finish within %v; stderr:\n%s", args, timeout, stderr.String())
		return -1, "", ""
	}
}

// startUpIn runs `switchboard up` with its data dir in dir's .switchboard (where the
// operator commands look) on free ports, and waits for the discovery file.
func startUpIn(t *testing.T, name, dir string, extra ...string) (*testenv.Proc, int) {
	t.Helper()
	base := consecutiveFreePorts(t, 3)
	apiPorts, err := backends.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"up", "--data-dir", filepath.Join(dir, ".switchboard"), "--nodes", "3",
		"--mqtt-port", fmt.Sprint(base), "--api", fmt.Sprintf("127.0.0.1:%d", apiPorts[0])}, extra...)
	up := testenv.StartProc(t, name, args...)
	testenv.Eventually(t, 60*time.Second, 100*time.Millisecond, func() error {
		select {
		case <-up.Done():
			t.Fatalf("up exited:\n%s", up.Output())
		default:
		}
		_, err := os.Stat(filepath.Join(dir, ".switchboard", "cluster.json"))
		return err
	})
	return up, base
}

// TestUpOperatorCommandsNeedNoFlags: in the directory where `switchboard up` runs,
// status, send, mailbox, quarantine and release work without --zk, --etcd or --api (up's
// API is not on the default port, so send must have found it), each saying on stderr how
// it found the cluster; once up has stopped the file is gone and status asks for --zk or
// --etcd; a file left by a killed up is ignored with a note.
func TestUpOperatorCommandsNeedNoFlags(t *testing.T) {
	dir := t.TempDir()
	up, _ := startUpIn(t, "up", dir)
	found := fmt.Sprintf("using the local cluster of `switchboard up` in ./.switchboard (pid %d)", up.Pid())
	run := func(args ...string) (string, string) {
		t.Helper()
		code, out, errOut := runIn(t, dir, 60*time.Second, args...)
		if code != 0 || !strings.Contains(errOut, found) {
			t.Fatalf("%v: exit %d, stderr %q (want %q)\n%s", args, code, errOut, found, out)
		}
		return out, errOut
	}

	var st struct {
		Nodes       []coord.Member     `json:"nodes"`
		Quarantined []coord.Quarantine `json:"quarantined"`
	}
	status := func() {
		t.Helper()
		out, _ := run("status", "--json")
		st.Nodes, st.Quarantined = nil, nil
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
	}
	status()
	if len(st.Nodes) != 3 {
		t.Fatalf("status shows %d nodes", len(st.Nodes))
	}
	if out, _ := run("send", "--to", "bob", "hello bob"); !strings.Contains(out, "queued in bob's mailbox") {
		t.Fatalf("send: %s", out)
	}
	if out, _ := run("mailbox", "--to", "bob"); !strings.Contains(out, "bob: 1 message(s) waiting") {
		t.Fatalf("mailbox: %s", out)
	}
	// quarantine --wait returns once the node is out (up's grace is 2s), without a
	// progress line: stderr is not a terminal.
	out, errOut := run("quarantine", "node-3", "--reason", "integration test", "--wait", "30s")
	if !strings.Contains(out, "quarantined node-3: integration test") || !strings.Contains(out, "node-3 is out of service") {
		t.Fatalf("quarantine --wait: %s", out)
	}
	if strings.Contains(errOut, "\r") {
		t.Fatalf("a progress line was drawn into a pipe: %q", errOut)
	}
	status()
	if len(st.Nodes) != 2 || len(st.Quarantined) != 1 || st.Quarantined[0].Node != "node-3" {
		t.Fatalf("after quarantine: nodes %+v, quarantined %+v", st.Nodes, st.Quarantined)
	}
	if out, _ := run("release", "node-3", "--wait", "30s"); !strings.Contains(out, "node-3 is back in the live set") {
		t.Fatalf("release --wait: %s", out)
	}
	status()
	if len(st.Nodes) != 3 || len(st.Quarantined) != 0 {
		t.Fatalf("after release: nodes %+v, quarantined %+v", st.Nodes, st.Quarantined)
	}

	// A mark outlives up: node-1 is left quarantined for the next start.
	if out, _ := run("quarantine", "node-1", "--reason", "kept across a restart"); !strings.Contains(out, "quarantined node-1") {
		t.Fatalf("quarantine node-1: %s", out)
	}

	// up removes the file on exit; the commands then need to be told, and are told that up
	// is not running here.
	if code, err := up.Term(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("up exit %d %v", code, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".switchboard", "cluster.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the discovery file outlived up: %v", err)
	}
	code, _, errOut := runIn(t, dir, 30*time.Second, "status")
	if code != 2 || !strings.Contains(errOut, "--etcd is required") ||
		!strings.Contains(errOut, "holds the data of a `switchboard up` that is not running") {
		t.Fatalf("status after up stopped: exit %d: %s", code, errOut)
	}

	// The next start marks node-1 in its banner, and its tour connects to node-2, in service.
	up2, base := startUpIn(t, "up-killed", dir)
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(up2.Output(), "Try it:") {
			return errors.New("no tour yet") // printed just after the discovery file
		}
		return nil
	})
	banner := up2.Output()
	for _, want := range []string{"QUARANTINED (kept across a restart): `switchboard release node-1`",
		fmt.Sprintf("mosquitto_sub -h 127.0.0.1 -p %d ", base+1)} {
		if !strings.Contains(banner, want) {
			t.Errorf("the banner after a restart lacks %q:\n%s", want, testenv.LastLines(banner, 30))
		}
	}
	// A killed up leaves its file behind: stale, ignored with a note.
	up2.Kill()
	code, _, errOut = runIn(t, dir, 30*time.Second, "status")
	if code != 2 || !strings.Contains(errOut, fmt.Sprintf("(pid %d) is not running", up2.Pid())) {
		t.Fatalf("status beside a killed up: exit %d: %s", code, errOut)
	}
}

// deniedPublish connects a 3.1.1 client anonymously and publishes at QoS 1 to a topic it
// may not publish to; mochi answers a 3.1.1 client's refused publish by closing it.
func deniedPublish(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(connectPacket(4, "mallory")); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK %x %v", ack, err)
	}
	topic, payload := "inbox/alice", "SECRET-PAYLOAD"
	body := append([]byte{0, byte(len(topic))}, topic...)
	body = append(body, 0, 1) // packet id
	body = append(body, payload...)
	if _, err := c.Write(append([]byte{0x32, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, c) // until mochi closes the connection
}

// TestUpQuietByDefault: up prints its banner and tour first, its log is warnings only, an
// ACL refusal does not dump mochi's packet struct, and nothing draws a progress line into
// a pipe; -v brings the roles' INFO log back, still without the packet struct.
func TestUpQuietByDefault(t *testing.T) {
	dir := t.TempDir()
	up, base := startUpIn(t, "up-quiet", dir)
	deniedPublish(t, fmt.Sprintf("127.0.0.1:%d", base))
	time.Sleep(500 * time.Millisecond) // for any line the refusal would log
	out := up.Output()
	if !strings.HasPrefix(strings.TrimLeft(out, "\n"), "Switchboard is up") {
		t.Fatalf("the banner is not first:\n%s", testenv.LastLines(out, 40))
	}
	for _, bad := range []string{"level=INFO", "error processing packet", "SECRET-PAYLOAD", "FixedHeader", "\r"} {
		if strings.Contains(out, bad) {
			t.Fatalf("up's output holds %q:\n%s", bad, testenv.LastLines(out, 40))
		}
	}
	if code, err := up.Term(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("up exit %d %v", code, err)
	}

	up, base = startUpIn(t, "up-verbose", dir, "-v")
	deniedPublish(t, fmt.Sprintf("127.0.0.1:%d", base))
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(up.Output(), "access denied") {
			return fmt.Errorf("no access denied line yet")
		}
		return nil
	})
	out = up.Output()
	for _, want := range []string{"level=INFO", `msg="node started"`, "client=mallory"} {
		if !strings.Contains(out, want) {
			t.Fatalf("-v: the log lacks %q:\n%s", want, testenv.LastLines(out, 40))
		}
	}
	for _, bad := range []string{"SECRET-PAYLOAD", "FixedHeader", "error processing packet"} {
		if strings.Contains(out, bad) {
			t.Fatalf("-v: the log holds %q:\n%s", bad, testenv.LastLines(out, 40))
		}
	}
}
