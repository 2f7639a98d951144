package integration

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// startUp runs `switchboard up` with embedded defaults and waits for its API.
func startUp(t *testing.T, name, dataDir string, mqttPort int, api string) *testenv.Proc {
	t.Helper()
	p := testenv.StartProc(t, name, "up", "--data-dir", dataDir, "--nodes", "3",
		"--mqtt-port", fmt.Sprint(mqttPort), "--api", api)
	testenv.Eventually(t, 60*time.Second, 100*time.Millisecond, func() error {
		select {
		case <-p.Done():
			t.Fatalf("up exited:\n%s", p.Output())
		default:
		}
		if !strings.Contains(p.Output(), "Switchboard is up") {
			return fmt.Errorf("not up yet")
		}
		resp, err := http.Get("http://" + api + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return p
}

// consecutiveFreePorts finds n consecutive free ports on 127.0.0.1.
func consecutiveFreePorts(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		ports, err := backends.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		base := ports[0]
		if base+n > 65000 {
			continue
		}
		var ls []net.Listener
		ok := true
		for i := range n {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no consecutive free ports")
	return 0
}

// TestUpEndToEnd runs the built binary's `up` with embedded defaults: real MQTT clients,
// messages through the API, a restart of `up`, and the queued messages received after it.
func TestUpEndToEnd(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	base := consecutiveFreePorts(t, 3)
	apiPorts, _ := backends.FreePorts(1)
	api := fmt.Sprintf("127.0.0.1:%d", apiPorts[0])
	url := "http://" + api
	up := startUp(t, "up-1", dataDir, base, api)
	r := &routerProc{Proc: up, url: url}

	// A client online on node-2 gets its message directly.
	alice := inboxClient(t, fmt.Sprintf("127.0.0.1:%d", base+1), "alice")
	var res router.Result
	if code := r.send(t, msgReq{To: "alice", Payload: "hello alice"}, &res); code != 200 || res.Status != router.Delivered || res.Node != "node-2" {
		t.Fatalf("send to alice: %d %+v", code, res)
	}
	if m, err := alice.Next(5 * time.Second); err != nil || string(m.Payload) != "hello alice" {
		t.Fatalf("alice: %+v %v", m, err)
	}
	// Bob is offline: his messages queue.
	var want []string
	for i := range 5 {
		r.send(t, msgReq{To: "bob", Payload: fmt.Sprint("for bob ", i)}, &res)
		if res.Status != router.Queued {
			t.Fatalf("bob %d: %+v", i, res)
		}
		want = append(want, fmt.Sprint("for bob ", i))
	}
	alice.Close()

	// A second `up` on the same data directory is refused while the first runs.
	code, _, errOut := testenv.Run(t, 30*time.Second, "up", "--data-dir", dataDir, "--mqtt-port", "1", "--api", "127.0.0.1:0")
	if code == 0 || !strings.Contains(errOut, "in use by another `switchboard up`") {
		t.Fatalf("second up on a locked data dir: exit %d: %s", code, errOut)
	}

	// Restart: Ctrl-C (SIGTERM) and start again on the same data directory.
	if code, err := up.Term(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("up exit %d %v:\n%s", code, err, testenv.LastLines(up.Output(), 20))
	}
	up2 := startUp(t, "up-2", dataDir, base, api)
	_ = up2
	var info router.Client
	getJSON(t, url+"/v1/clients/bob", &info)
	if info.Depth != len(want) {
		t.Fatalf("after the restart bob's mailbox holds %d, want %d", info.Depth, len(want))
	}
	bob := inboxClient(t, fmt.Sprintf("127.0.0.1:%d", base+2), "bob")
	for i, w := range want {
		m, err := bob.Next(10 * time.Second)
		if err != nil || string(m.Payload) != w {
			t.Fatalf("bob message %d: %+v %v, want %q", i, m, err, w)
		}
	}
}

// TestUpRefusesBadStart: a busy port or an unwritable data dir is refused with a clear
// error before anything starts.
func TestUpRefusesBadStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"MQTT port in use", []string{"--mqtt-port", fmt.Sprint(busyPort), "--data-dir", t.TempDir(), "--api", "127.0.0.1:0"}, "address already in use"},
		{"API port in use", []string{"--api", busy.Addr().String(), "--data-dir", t.TempDir(), "--mqtt-port", fmt.Sprint(consecutiveFreePorts(t, 3))}, "--api"},
		{"unwritable data dir", []string{"--data-dir", filepath.Join(file, "sub"), "--api", "127.0.0.1:0"}, "--data-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := testenv.Run(t, 30*time.Second, append([]string{"up"}, tc.args...)...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr does not name %q:\n%s", code, tc.want, errOut)
			}
		})
	}
}
