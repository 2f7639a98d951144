package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// TestConfigFileRunsACluster: one config file serves a node and a router on the same
// machine — shared coordination and store sections (the store given as a redis:// URL),
// a section each — and they run from it with nothing but --config; a flag still
// overrides the file. `config check` passes the same file.
func TestConfigFileRunsACluster(t *testing.T) {
	c := newCluster(t)
	ports, err := backends.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	mqtt, api := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	body := fmt.Sprintf(`# one machine: a node and a router
log:
  log-level: info
coordination:
  zk: %s
  zk-root: %s
  session-timeout: %s
store:
  redis: redis://%s/0
  redis-prefix: sb%s
node:
  id: node-cfg
  allow-anonymous: true
  mqtt: %s
  internal: 127.0.0.1:0
  admin: 127.0.0.1:0
  data-dir: %s
  max-wait: 2s
router:
  listen: 127.0.0.1:1 # overridden by the flag below
  no-auth: true
  id: router-cfg
`, c.zk, c.root, sessionTimeout, c.redis, c.root[4:12], mqtt, t.TempDir())
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := testenv.Run(t, 30*time.Second, "config", "check", path); code != 0 ||
		!strings.Contains(out, "# node: valid.") || !strings.Contains(out, "# router: valid.") {
		t.Fatalf("config check: exit %d\n%s\n%s", code, out, errOut)
	}

	testenv.StartProc(t, "node-cfg", "node", "--config", path)
	m := c.waitMember("node-cfg", 30*time.Second, func(m coord.Member, ok bool) bool { return ok })
	if m.MQTTAddr != mqtt {
		t.Fatalf("the node registered MQTT %s, want the file's %s", m.MQTTAddr, mqtt)
	}
	c.waitReady(m)
	rp := testenv.StartProc(t, "router-cfg", "router", "--config", path, "--listen", api)
	r := &routerProc{Proc: rp, url: "http://" + api}
	testenv.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-rp.Done():
			t.Fatalf("router exited:\n%s", rp.Output())
		default:
		}
		resp, err := http.Get(r.url + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("healthz %d", resp.StatusCode)
		}
		return nil
	})

	alice := inboxClient(t, mqtt, "alice")
	var res router.Result
	if code := r.send(t, msgReq{To: "alice", Payload: "from a config file"}, &res); code != 200 || res.Status != router.Delivered || res.Node != "node-cfg" {
		t.Fatalf("send: %d %+v", code, res)
	}
	if msg, err := alice.Next(5 * time.Second); err != nil || string(msg.Payload) != "from a config file" {
		t.Fatalf("alice: %+v %v", msg, err)
	}
	if !strings.Contains(rp.Output(), "level=INFO") {
		t.Fatalf("the file's log level did not reach the router:\n%s", testenv.LastLines(rp.Output(), 20))
	}
}
