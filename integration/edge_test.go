package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// The node's edge: MQTT over WebSocket (ws:// and wss://) for MQTT.js, the PROXY protocol
// behind a real HAProxy, and the PUBACK mochi got wrong.

// startJSClient runs integration/js/client.js (see its header for modes and events).
func startJSClient(t *testing.T, env []string, args ...string) *jsDevice {
	t.Helper()
	dir := filepath.Join(testenv.ModuleRoot(t), "integration", "js")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "mqtt")); err != nil {
		t.Fatalf("MQTT.js is not installed (run: npm ci --prefix integration/js): %v", err)
	}
	cmd := exec.Command("node", append([]string{"client.js"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node client.js: %v", err)
	}
	d := &jsDevice{cmd: cmd, stdin: stdin, events: make(chan map[string]any, 1024), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				d.events <- ev
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
	})
	return d
}

// nextEvent returns the client's next event (error events included).
func (d *jsDevice) nextEvent(t *testing.T, within time.Duration) map[string]any {
	t.Helper()
	select {
	case ev := <-d.events:
		return ev
	case <-d.done:
		t.Fatal("MQTT.js client exited")
	case <-time.After(within):
		t.Fatalf("MQTT.js client: no event within %v", within)
	}
	return nil
}

// TestPubackReasonCodeWithUserProperty: a QoS 1 PUBLISH with a user property is answered
// PUBACK 0x00 (mochi sent 0x01, which MQTT 5 does not define for PUBACK), seen by
// mosquitto_pub -V 5, paho.golang and MQTT.js (whose publish must complete).
func TestPubackReasonCodeWithUserProperty(t *testing.T) {
	mpub := testenv.Tool(t, "mosquitto_pub")
	c := newCluster(t)
	n := c.rulesNode(t, "puback")
	host, port := splitHostPort(t, n.member.MQTTAddr)
	out, err := exec.Command(mpub, "-h", host, "-p", port, "-V", "5", "-q", "1", "-i", "rules-mpub", "-u", "rules", "-P", rulesPassword,
		"-t", "rules/puback", "-m", "hello", "-D", "publish", "user-property", "a", "1", "-d").CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "received PUBACK (Mid: 1, RC:0)") {
		t.Fatalf("mosquitto_pub -V 5 -q 1 with a user property: want PUBACK reason 0, got:\n%s", out)
	}

	pub := rulesClient(t, n.member.MQTTAddr, "rules-paho", testenv.MQTTOptions{CleanStart: true})
	if rc, err := pub.PublishProps("rules/puback", []byte("hello"), 1, [][2]string{{"a", "1"}}, 0); err != nil || rc != 0 {
		t.Fatalf("paho: PUBACK reason %#x, %v; want 0", rc, err)
	}

	js := startJSClient(t, nil, "mqtt://"+n.member.MQTTAddr, "rules-js", "rules", rulesPassword, "publish", "rules/puback")
	if ev := js.nextEvent(t, 10*time.Second); ev["event"] != "connected" {
		t.Fatalf("MQTT.js: %v", ev)
	}
	if ev := js.nextEvent(t, 5*time.Second); ev["event"] != "published" || ev["reasonCode"] != float64(0) {
		t.Fatalf("MQTT.js publish with a user property: %v, want published with reason 0", ev)
	}
}

// TestWebSocketMQTTJS: MQTT.js connects to a node over ws:// and wss://, subscribes to its
// inbox and receives a directed message sent through the router; a bad password over
// WebSocket is refused as over TCP; and the connect deadline closes a WebSocket
// connection that never upgrades.
func TestWebSocketMQTTJS(t *testing.T) {
	certs := testenv.GenerateCerts(t)
	addrs := freeAddrs(t, 2)
	ws, wss := addrs[0], addrs[1]
	c := newCluster(t)
	file := filepath.Join(t.TempDir(), "users.json")
	setPassword(t, file, "web", "web-password-1", "--clients", "web-*")
	grantRule(t, file, "web", "web/news/#", "readwrite")
	n := c.startNode("ws-1", "--auth-file", file, "--ws", ws, "--wss", wss,
		"--wss-cert", certs.ServerCert, "--wss-key", certs.ServerKey, "--connect-timeout", "1s")
	n2 := c.startNode("ws-2", "--auth-file", file)
	r := c.startRouter("ws-r")

	for _, tc := range []struct {
		url string
		env []string
	}{
		{"ws://" + ws + "/mqtt", nil},
		{"wss://" + strings.Replace(wss, "127.0.0.1", "localhost", 1) + "/mqtt", []string{"SB_CA=" + certs.CA}},
	} {
		id := "web-" + strings.SplitN(tc.url, ":", 2)[0]
		js := startJSClient(t, tc.env, tc.url, id, "web", "web-password-1", "inbox")
		if ev := js.nextEvent(t, 10*time.Second); ev["event"] != "connected" {
			t.Fatalf("%s: %v", tc.url, ev)
		}
		var res router.Result
		if code := r.send(t, msgReq{To: id, Payload: "over " + tc.url}, &res); code != 200 || res.Status != router.Delivered {
			t.Fatalf("send to %s: %d %+v", id, code, res)
		}
		ev := js.nextEvent(t, 5*time.Second)
		if ev["event"] != "message" || ev["payload"] != "over "+tc.url || ev["id"] != res.ID {
			t.Fatalf("%s: %v, want the directed message %s", tc.url, ev, res.ID)
		}
		t.Logf("MQTT.js over %s received directed message %s", tc.url, res.ID)

		// A cross-node publish: subscribed over WebSocket on node 1, published by a paho
		// client on node 2.
		sub := startJSClient(t, tc.env, tc.url, id+"-sub", "web", "web-password-1", "subscribe", "web/news/#")
		if ev := sub.nextEvent(t, 10*time.Second); ev["event"] != "connected" {
			t.Fatalf("%s: %v", tc.url, ev)
		}
		if ev := sub.nextEvent(t, 5*time.Second); ev["event"] != "subscribed" || ev["code"] != float64(1) {
			t.Fatalf("subscribe web/news/# over %s: %v", tc.url, ev)
		}
		pub := testenv.ConnectMQTT(t, n2.member.MQTTAddr, id+"-pub", testenv.MQTTOptions{CleanStart: true, Username: "web", Password: []byte("web-password-1")})
		if err := pub.Publish("web/news/today", []byte("from node 2 to "+tc.url), 1); err != nil {
			t.Fatal(err)
		}
		if ev := sub.nextEvent(t, 5*time.Second); ev["event"] != "message" || ev["payload"] != "from node 2 to "+tc.url || ev["topic"] != "web/news/today" {
			t.Fatalf("%s: %v, want the publish made on node 2", tc.url, ev)
		}
		pub.Close()
	}

	// The ACLs hold over WebSocket: another client's inbox is refused, one's own granted.
	for topic, want := range map[string]float64{"inbox/other-device": 0x87, "inbox/web-acl": 1} {
		js := startJSClient(t, nil, "ws://"+ws+"/mqtt", "web-acl", "web", "web-password-1", "subscribe", topic)
		if ev := js.nextEvent(t, 10*time.Second); ev["event"] != "connected" {
			t.Fatalf("subscribe %s: %v", topic, ev)
		}
		if ev := js.nextEvent(t, 5*time.Second); ev["event"] != "subscribed" || ev["code"] != want {
			t.Fatalf("subscribe %s over ws://: %v, want SUBACK reason %#x", topic, ev, int(want))
		}
	}

	bad := startJSClient(t, nil, "ws://"+ws+"/mqtt", "web-bad", "web", "wrong-password", "inbox")
	if ev := bad.nextEvent(t, 10*time.Second); ev["event"] != "error" || ev["code"] != float64(0x86) {
		t.Fatalf("a bad password over ws://: %v, want a refusal with reason 0x86", ev)
	}

	// The pre-authentication deadline holds on the WebSocket port: a TCP connection that
	// sends no upgrade request is closed after --connect-timeout.
	conn, err := net.DialTimeout("tcp", ws, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("a silent WebSocket connection was not closed within 5s: %v", err)
	}
	if took := time.Since(start); took < 900*time.Millisecond || took > 3*time.Second {
		t.Fatalf("a silent WebSocket connection was closed after %v, want about --connect-timeout 1s", took)
	}
	if v, err := metric(n.member.AdminAddr, `switchboard_node_limit_refusals_total{limit="connect_timeout"}`); err != nil || v < 1 {
		t.Fatalf("connect_timeout refusals %v (%v), want at least 1", v, err)
	}
}

// connectFrom opens a TCP connection from the loopback address src to addr, sends an MQTT 5
// CONNECT with a password, and returns the CONNACK's reason code, or ok false when the
// connection was closed without one.
func connectFrom(t *testing.T, src, addr, id, user, pass string) (code byte, ok bool) {
	t.Helper()
	c, err := dialFromAddr(src, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var body []byte
	body = append(body, str("MQTT")...)
	body = append(body, 5, 0x02|0x80|0x40, 0, 30, 0)
	body = append(body, str(id)...)
	body = append(body, str(user)...)
	body = append(body, str(pass)...)
	if _, err := c.Write(packet(0x10, body)); err != nil {
		return 0, false
	}
	r := &rawConn{t: t, c: c}
	typ, pk := r.read()
	if typ != 0x20 || len(pk) < 2 {
		return 0, false
	}
	return pk[1], true
}

// startProxyHAProxy runs HAProxy on 127.0.0.1 in front of nodes' MQTT and WebSocket
// ports, with send-proxy-v2 on every server; balance first sends every connection to the
// first node while it is up (the second takes over if it is not), so one node's
// per-address counts see every client. It returns the frontends' addresses.
func startProxyHAProxy(t *testing.T, nodes []*nodeProc) (front, wsFront string) {
	t.Helper()
	bin := testenv.Tool(t, "haproxy")
	ports, err := backends.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	front, wsFront = fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	cfg := []string{
		"global", "    log stderr format raw local0 info", "    maxconn 1000",
		"defaults", "    log global", "    mode tcp", "    option tcplog",
		"    timeout connect 5s", "    timeout client 30s", "    timeout server 30s",
		"frontend mqtt", "    bind " + front, "    default_backend nodes",
		"frontend mqtt_ws", "    bind " + wsFront, "    default_backend nodes_ws",
		"backend nodes", "    balance first",
	}
	for _, n := range nodes {
		cfg = append(cfg, fmt.Sprintf("    server %s %s send-proxy-v2", n.id, n.member.MQTTAddr))
	}
	cfg = append(cfg, "backend nodes_ws", "    balance first")
	for _, n := range nodes {
		cfg = append(cfg, fmt.Sprintf("    server %s %s send-proxy-v2", n.id, n.ws))
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(strings.Join(cfg, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	h := startExternal(t, "haproxy", bin, "-db", "-f", path)
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-h.done:
			t.Fatalf("haproxy exited; see its log")
		default:
		}
		c, err := net.DialTimeout("tcp", front, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return front, wsFront
}

// TestProxyProtocolThroughHAProxy: two nodes with --proxy-protocol behind a real HAProxy
// (send-proxy-v2). Clients come from 127.0.0.2 and 127.0.0.3, HAProxy reaches the nodes
// from 127.0.0.1, the only trusted source. The node's per-address limits and its log see
// the clients' addresses: 127.0.0.2 spends its pending-connection share and its
// authentication failure budget while 127.0.0.3, through the same HAProxy, is untouched.
// A connection straight to a node without a header is refused, from an untrusted address
// or a trusted one.
func TestProxyProtocolThroughHAProxy(t *testing.T) {
	c := newCluster(t)
	file := filepath.Join(t.TempDir(), "users.json")
	setPassword(t, file, "edge", "edge-password-1", "--clients", "edge-*")
	limits := []string{"--auth-file", file, "--proxy-protocol", "--proxy-trusted", "127.0.0.1/32",
		"--max-pending-connects-per-ip", "2", "--auth-failures-per-ip", "2", "--connect-timeout", "5s"}
	wsAddrs := freeAddrs(t, 2)
	var nodes []*nodeProc
	for i, id := range []string{"pp-1", "pp-2"} {
		n := c.startNode(id, append(limits, "--ws", wsAddrs[i])...)
		n.ws = wsAddrs[i]
		nodes = append(nodes, n)
	}
	front, wsFront := startProxyHAProxy(t, nodes)
	first := nodes[0]

	// A client through HAProxy works, and the node logs its address, not HAProxy's.
	if code, ok := connectFrom(t, "127.0.0.3", front, "edge-ok", "edge", "edge-password-1"); !ok || code != 0 {
		t.Fatalf("through HAProxy from 127.0.0.3: CONNACK %#x (%v), want 0", code, ok)
	}

	// Authentication failures: 127.0.0.2's budget of 2 runs out, 127.0.0.3's does not.
	for i := range 2 {
		if code, ok := connectFrom(t, "127.0.0.2", front, "edge-bad", "edge", "wrong"); !ok || code != 0x86 {
			t.Fatalf("bad password %d from 127.0.0.2: CONNACK %#x (%v), want 0x86", i, code, ok)
		}
	}
	if code, ok := connectFrom(t, "127.0.0.2", front, "edge-bad", "edge", "wrong"); !ok || code != 0x9F {
		t.Fatalf("third bad password from 127.0.0.2: CONNACK %#x (%v), want 0x9F (its failure budget is spent)", code, ok)
	}
	if code, ok := connectFrom(t, "127.0.0.3", front, "edge-ok", "edge", "edge-password-1"); !ok || code != 0 {
		t.Fatalf("127.0.0.3 after 127.0.0.2 spent its budget: CONNACK %#x (%v), want 0 (HAProxy's address must not be limited)", code, ok)
	}
	if !strings.Contains(first.Output(), "remote=127.0.0.2:") {
		t.Fatalf("the node's log does not name the client's address 127.0.0.2:\n%s", first.Output())
	}

	// Pending connections: 127.0.0.2 holds its 2; a third from it is closed by the node,
	// while 127.0.0.3 still connects.
	stalls := make([]net.Conn, 0, 2)
	defer func() {
		for _, s := range stalls {
			s.Close()
		}
	}()
	before, _ := metric(first.member.AdminAddr, `switchboard_node_limit_refusals_total{limit="pending_connects_per_ip"}`)
	for range 2 {
		s, err := dialFromAddr("127.0.0.2", front)
		if err != nil {
			t.Fatal(err)
		}
		stalls = append(stalls, s)
	}
	testenv.Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		v, err := metric(first.member.AdminAddr, "switchboard_node_mqtt_pending_connections")
		if err != nil || v < 2 {
			return fmt.Errorf("pending %v (%v), want 2", v, err)
		}
		return nil
	})
	if code, ok := connectFrom(t, "127.0.0.2", front, "edge-ok", "edge", "edge-password-1"); ok {
		t.Fatalf("a third pending connection from 127.0.0.2 got CONNACK %#x, want it closed (limit 2 per address)", code)
	}
	if v, _ := metric(first.member.AdminAddr, `switchboard_node_limit_refusals_total{limit="pending_connects_per_ip"}`); v != before+1 {
		t.Fatalf("pending_connects_per_ip refusals %v, want %v", v, before+1)
	}
	if code, ok := connectFrom(t, "127.0.0.3", front, "edge-ok", "edge", "edge-password-1"); !ok || code != 0 {
		t.Fatalf("127.0.0.3 while 127.0.0.2 holds its pending share: CONNACK %#x (%v), want 0", code, ok)
	}

	// MQTT over WebSocket through HAProxy: the node sees the client's address there too.
	if code, err := wsConnectFrom("127.0.0.4", wsFront, "edge-ws", "edge", "wrong"); err != nil || code != 0x86 {
		t.Fatalf("bad password over WebSocket through HAProxy from 127.0.0.4: CONNACK %#x, %v; want 0x86", code, err)
	}
	testenv.Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(first.Output(), "remote=127.0.0.4:") {
			return fmt.Errorf("the node's log does not name the WebSocket client's address 127.0.0.4")
		}
		return nil
	})

	// Straight to a node, without a header: refused from an untrusted address at accept,
	// and from the trusted one (a header is required).
	for _, src := range []string{"127.0.0.2", "127.0.0.1"} {
		if code, ok := connectFrom(t, src, first.member.MQTTAddr, "edge-ok", "edge", "edge-password-1"); ok {
			t.Fatalf("a connection from %s without a PROXY header got CONNACK %#x, want it closed", src, code)
		}
	}
	// A trusted source that opens a connection and sends nothing, not even the header, is
	// closed by the connect deadline (5s here): reading the header holds nothing for ever.
	silent, err := dialFromAddr("127.0.0.1", first.member.MQTTAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	opened := time.Now()
	_ = silent.SetReadDeadline(opened.Add(15 * time.Second))
	if _, err := io.Copy(io.Discard, silent); err != nil {
		t.Fatalf("a silent connection to a PROXY node was not closed within 15s: %v", err)
	}
	if took := time.Since(opened); took < 4900*time.Millisecond || took > 8*time.Second {
		t.Fatalf("a silent connection was closed after %v, want about --connect-timeout 5s", took)
	}
	for limit, want := range map[string]float64{"proxy_untrusted": 1, "proxy_header": 1} {
		if v, err := metric(first.member.AdminAddr, `switchboard_node_limit_refusals_total{limit="`+limit+`"}`); err != nil || v != want {
			t.Fatalf("%s refusals %v (%v), want %v", limit, v, err, want)
		}
	}
}

// wsConnect opens MQTT over WebSocket to addr (ws://addr/mqtt, subprotocol mqtt), sends an
// anonymous MQTT 5 CONNECT and returns the CONNACK's reason code.
func wsConnect(addr, id string) (byte, error) { return wsConnectFrom("127.0.0.1", addr, id, "", "") }

// wsConnectFrom is wsConnect from the loopback address src, with a username and password
// when user is not empty.
func wsConnectFrom(src, addr, id, user, pass string) (byte, error) {
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second,
		NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext}
	c, _, err := d.Dial("ws://"+addr+"/mqtt", nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	flags := byte(0x02)
	if user != "" {
		flags |= 0x80 | 0x40
	}
	var body []byte
	body = append(body, str("MQTT")...)
	body = append(body, 5, flags, 0, 30, 0)
	body = append(body, str(id)...)
	if user != "" {
		body = append(append(body, str(user)...), str(pass)...)
	}
	if err := c.WriteMessage(websocket.BinaryMessage, packet(0x10, body)); err != nil {
		return 0, err
	}
	_, msg, err := c.ReadMessage()
	if err != nil {
		return 0, err
	}
	if len(msg) < 4 || msg[0] != 0x20 {
		return 0, fmt.Errorf("want CONNACK, got %x", msg)
	}
	return msg[3], nil
}

// TestWebSocketConnectionCost measures what an idle authenticated client costs the node
// over TCP and over WebSocket (heap in use, goroutines), 300 of each, and bounds what the
// WebSocket adds: a small read buffer, and a write buffer taken from a pool only while a
// message is written (13 KiB more than TCP when both were held per connection).
func TestWebSocketConnectionCost(t *testing.T) {
	const conns = 300
	ws := freeAddrs(t, 2)
	c := newCluster(t)
	// One node for each transport, so neither measurement starts on the other's leftovers.
	nodes := []*nodeProc{c.startNode("tcp-cost", "--ws", ws[0], "--pprof"), c.startNode("ws-cost", "--ws", ws[1], "--pprof")}
	var n *nodeProc
	sample := func() (heap, goroutines float64) {
		// The heap profile with gc=1 collects first, so the heap in use is what is live.
		resp, err := http.Get("http://" + n.member.AdminAddr + "/debug/pprof/heap?gc=1")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		h, err := metric(n.member.AdminAddr, "go_memstats_heap_inuse_bytes")
		if err != nil {
			t.Fatal(err)
		}
		g, err := metric(n.member.AdminAddr, "go_goroutines")
		if err != nil {
			t.Fatal(err)
		}
		return h, g
	}
	measure := func(kind string, open func(i int) io.Closer) (perConn, goroutinesPer float64) {
		h0, g0 := sample()
		closers := make([]io.Closer, 0, conns)
		for i := range conns {
			closers = append(closers, open(i))
		}
		waitClients(t, n, conns)
		h1, g1 := sample()
		for _, cl := range closers {
			cl.Close()
		}
		waitClients(t, n, 0)
		perConn, goroutinesPer = (h1-h0)/conns, (g1-g0)/conns
		t.Logf("MEASURED %d idle clients over %s: heap in use %.1f → %.1f MiB (%.1f KiB each), goroutines %.0f → %.0f (%.1f each)",
			conns, kind, h0/(1<<20), h1/(1<<20), perConn/1024, g0, g1, goroutinesPer)
		return perConn, goroutinesPer
	}
	n = nodes[0]
	tcpPer, _ := measure("TCP", func(i int) io.Closer {
		r, code := dialRaw(t, n.member.MQTTAddr, fmt.Sprintf("cost-tcp-%d", i), "", "")
		if code != 0 {
			t.Fatalf("TCP CONNACK %#x", code)
		}
		return r.c
	})
	n = nodes[1]
	wsPer, _ := measure("WebSocket", func(i int) io.Closer {
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		wc, _, err := d.Dial("ws://"+ws[1]+"/mqtt", nil)
		if err != nil {
			t.Fatal(err)
		}
		var body []byte
		body = append(body, str("MQTT")...)
		body = append(body, 5, 0x02, 0, 30, 0)
		body = append(body, str(fmt.Sprintf("cost-ws-%d", i))...)
		if err := wc.WriteMessage(websocket.BinaryMessage, packet(0x10, body)); err != nil {
			t.Fatal(err)
		}
		_ = wc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, msg, err := wc.ReadMessage(); err != nil || len(msg) < 4 || msg[3] != 0 {
			t.Fatalf("WebSocket CONNACK %x, %v", msg, err)
		}
		return wc
	})
	if wsPer > 128<<10 {
		t.Fatalf("an idle WebSocket client costs %.0f KiB of heap, want under 128 KiB", wsPer/1024)
	}
	if extra := wsPer - tcpPer; extra > 8<<10 {
		t.Fatalf("an idle WebSocket client costs %.1f KiB of heap more than a TCP one, want under 8 KiB", extra/1024)
	}
}
