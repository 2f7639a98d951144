package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestNodeRegistersAndStatusShowsIt: a node registers <root>/nodes/<id> with its data;
// `switchboard status` and the watcher show it.
func TestNodeRegistersAndStatusShowsIt(t *testing.T) {
	c := newCluster(t)
	n := c.startNode("node-a")
	m := n.member
	if m.Epoch == 0 || m.MQTTAddr == "" || m.InternalAddr == "" || m.AdminAddr == "" || m.Version == "" ||
		m.StartedAt.IsZero() || m.Instance == "" {
		t.Fatalf("registered member data incomplete: %+v", m)
	}
	code, out, errOut := testenv.Run(t, 30*time.Second, "status", "--zk", c.zk, "--zk-root", c.root, "--json")
	if code != 0 {
		t.Fatalf("status exit %d: %s", code, errOut)
	}
	var st struct {
		Nodes []coord.Member `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if len(st.Nodes) != 1 || st.Nodes[0] != m {
		t.Fatalf("status shows %+v, want exactly %+v", st.Nodes, m)
	}
	code, out, _ = testenv.Run(t, 30*time.Second, "status", "--zk", c.zk, "--zk-root", c.root)
	if code != 0 || !strings.Contains(out, "node-a") || !strings.Contains(out, m.MQTTAddr) {
		t.Fatalf("status (text) exit %d:\n%s", code, out)
	}
	status, h, err := health(m.AdminAddr)
	if err != nil || status != 200 || !h.Ready || h.State != "registered" || h.Epoch != m.Epoch {
		t.Fatalf("healthz = %d %+v (%v), want 200 ready registered at epoch %d", status, h, err, m.Epoch)
	}
	// The MQTT listener answers with the safe limits in place.
	cl := testenv.ConnectMQTT(t, m.MQTTAddr, "probe-1", testenv.MQTTOptions{CleanStart: true})
	if cl.Connack.Properties == nil || cl.Connack.Properties.ReceiveMaximum == nil {
		t.Fatalf("CONNACK without receive maximum: %+v", cl.Connack)
	}
}

// TestKilledNodeLeavesWithinSessionTimeout: kill -9 of a node process; it leaves the live set
// within the session timeout (measured and logged).
func TestKilledNodeLeavesWithinSessionTimeout(t *testing.T) {
	c := newCluster(t)
	n := c.startNode("node-k")
	killed := time.Now()
	n.Kill()
	c.waitMember("node-k", 3*sessionTimeout, func(_ coord.Member, ok bool) bool { return !ok })
	took := time.Since(killed)
	t.Logf("MEASURED: kill -9 → left the live set in %v (session timeout %v)", took.Round(time.Millisecond), sessionTimeout)
	// The ensemble expires a session between one and about one and a half timeouts
	// after the last heartbeat, depending on where in its tick the session falls.
	if took > sessionTimeout*2 {
		t.Fatalf("killed node left after %v, more than twice the session timeout %v", took, sessionTimeout)
	}
}

// TestSIGTERMLeavesAtOnceAndDisconnectsClients: SIGTERM deregisters at once and disconnects
// clients with MQTT 5 reason 0x8B.
func TestSIGTERMLeavesAtOnceAndDisconnectsClients(t *testing.T) {
	c := newCluster(t)
	n := c.startNode("node-t")
	cl := testenv.ConnectMQTT(t, n.member.MQTTAddr, "term-client", testenv.MQTTOptions{CleanStart: true})
	start := time.Now()
	code, err := n.Term(10 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("node exit code %d, %v", code, err)
	}
	c.waitMember("node-t", sessionTimeout/2, func(_ coord.Member, ok bool) bool { return !ok })
	t.Logf("MEASURED: SIGTERM → left the live set in %v", time.Since(start).Round(time.Millisecond))
	select {
	case <-cl.Disconnected():
	case <-time.After(5 * time.Second):
		t.Fatal("client got no DISCONNECT")
	}
	if r := cl.DisconnectReason(); r != 0x8B {
		t.Fatalf("DISCONNECT reason %#x, want 0x8B (server shutting down)", r)
	}
}

// TestNodeRefusesBadStart covers start-up refusals: each names the problem, in bounded time.
func TestNodeRefusesBadStart(t *testing.T) {
	c := newCluster(t)
	base := append(c.baseArgs(), "--allow-anonymous")
	live := c.startNode("node-dup")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"empty id", append([]string{"node", "--id", ""}, base...), "node id is empty"},
		{"slash in id", append([]string{"node", "--id", "a/b"}, base...), `"a/b"`},
		{"long id", append([]string{"node", "--id", strings.Repeat("n", 65)}, base...), "maximum is 64"},
		{"bad mqtt address", append([]string{"node", "--id", "x", "--mqtt", "nonsense"}, base...), `--mqtt "nonsense"`},
		{"no authentication configured", append([]string{"node", "--id", "x"}, c.baseArgs()...), "--allow-anonymous explicitly"},
		{"unreachable zk", []string{"node", "--id", "x", "--allow-anonymous", "--zk", "127.0.0.1:1,127.0.0.1:2", "--zk-dial-timeout", "2s",
			"--redis", c.redis, "--mqtt", "127.0.0.1:0", "--internal", "127.0.0.1:0", "--admin", "127.0.0.1:0"},
			"127.0.0.1:1,127.0.0.1:2"},
		{"unreachable redis", []string{"node", "--id", "x", "--allow-anonymous", "--zk", c.zk, "--redis", "127.0.0.1:1",
			"--mqtt", "127.0.0.1:0", "--internal", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, "127.0.0.1:1"},
		{"busy port", append([]string{"node", "--id", "x", "--mqtt", live.member.MQTTAddr,
			"--internal", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, base...), "address already in use"},
		{"duplicate live id", append([]string{"node", "--id", "node-dup", "--mqtt", "127.0.0.1:0",
			"--internal", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, base...), "already live in the cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, _, errOut := testenv.Run(t, 30*time.Second, tc.args...)
			if code == 0 {
				t.Fatalf("node started; want a refusal naming %s", tc.want)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr does not name %q:\n%s", code, tc.want, testenv.LastLines(errOut, 5))
			}
			t.Logf("refused in %v: %s", time.Since(start).Round(time.Millisecond), testenv.LastLines(errOut, 1))
		})
	}
	// The live node with the contested id is untouched.
	if m := c.waitMember("node-dup", time.Second, func(_ coord.Member, ok bool) bool { return ok }); m.Epoch != live.member.Epoch {
		t.Fatalf("live node-dup epoch changed to %d", m.Epoch)
	}
}

// TestPanicInOneClientKeepsNodeServing sends the packet that panics mochi v2.7.9 (mochi
// issue #501: an MQTT 5 SUBSCRIBE cut off after its topic filter). The node recovers, drops
// that connection only, and keeps serving.
func TestPanicInOneClientKeepsNodeServing(t *testing.T) {
	c := newCluster(t)
	n := c.startNode("node-p")
	other := testenv.ConnectMQTT(t, n.member.MQTTAddr, "bystander", testenv.MQTTOptions{CleanStart: true})
	// A client may always use its own probe topic: a loop back through the broker.
	if err := other.Subscribe("$switchboard/probe/bystander", 1); err != nil {
		t.Fatal(err)
	}

	conn, err := net.Dial("tcp", n.member.MQTTAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// CONNECT, MQTT 5, client id "evil", clean start, no properties.
	connect := []byte{0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 0, 0, 4, 'e', 'v', 'i', 'l'}
	connect[1] = byte(len(connect) - 2)
	if _, err := conn.Write(connect); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 64)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if k, err := conn.Read(ack); err != nil || k < 4 || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK: %x, %v", ack[:k], err)
	}
	// SUBSCRIBE, packet id 1, no properties, filter "a", and no options byte.
	if _, err := conn.Write([]byte{0x82, 6, 0, 1, 0, 0, 1, 'a'}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for {
		if _, err := conn.Read(buf); err != nil {
			break // the node closed this connection
		}
	}
	testenv.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		v, err := metric(n.member.AdminAddr, "switchboard_node_panics_recovered_total")
		if err != nil || v != 1 {
			return fmt.Errorf("panics recovered = %v, %v", v, err)
		}
		return nil
	})
	// The node is alive and serving: a new client connects, the bystander still works.
	testenv.ConnectMQTT(t, n.member.MQTTAddr, "after-panic", testenv.MQTTOptions{CleanStart: true})
	if err := other.Publish("$switchboard/probe/bystander", []byte("still here"), 1); err != nil {
		t.Fatalf("bystander publish after the panic: %v", err)
	}
	if msg, err := other.Next(5 * time.Second); err != nil || string(msg.Payload) != "still here" {
		t.Fatalf("bystander: %v %v", msg, err)
	}
	if status, h, _ := health(n.member.AdminAddr); status != 200 {
		t.Fatalf("healthz after panic: %d %+v", status, h)
	}
}

// TestOversizedPacketRefused: a CONNECT declaring more than the maximum packet size is
// refused from its fixed header, before the body is read.
func TestOversizedPacketRefused(t *testing.T) {
	c := newCluster(t)
	n := c.startNode("node-o")
	conn, err := net.Dial("tcp", n.member.MQTTAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// CONNECT with remaining length 256 MiB - 1 (0xFF 0xFF 0xFF 0x7F), and no body.
	if _, err := conn.Write([]byte{0x10, 0xFF, 0xFF, 0xFF, 0x7F}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 16)); err == nil {
		t.Fatal("node answered an oversized CONNECT instead of closing")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("node kept the connection open waiting for a 256 MiB body")
	}
	testenv.ConnectMQTT(t, n.member.MQTTAddr, "after-oversize", testenv.MQTTOptions{CleanStart: true})
}
