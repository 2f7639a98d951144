package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/healthz"
	"github.com/switchboard-mqtt/switchboard/internal/mqttclient"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/node"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/embedded"
)

var shared testenv.Shared

// A node runs the broker, listeners, health and status loops: after Close none of their
// goroutines may be left.
// The package's tests wait on leases, keep-alives and timeouts far more than they compute.
func TestMain(m *testing.M) {
	testenv.WaitingTests(8)
	shared.MainLeakCheck(m)
}

// backendsFor opens a client of a fresh in-memory coordinator cluster and an embedded store
// in a directory of its own: the node's tests check the node, and its backends (each with
// its own suite) are incidental.
func backendsFor(t *testing.T) (*memcoord.Coordinator, *embedded.Store) {
	t.Helper()
	return testenv.OpenMemCoord(t, memcoord.NewCluster()), testenv.EmbeddedStore(t)
}

// testConfig is the default configuration on free loopback ports.
func testConfig(t *testing.T, id string) node.Config {
	cfg := node.DefaultConfig()
	cfg.ID = id
	cfg.MQTTAddr, cfg.InternalAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Health.Interval = 100 * time.Millisecond
	cfg.Auth = anonymous(t)
	return cfg
}

// anonymous is an authenticator that admits clients without credentials.
func anonymous(t *testing.T) *auth.Authenticator {
	t.Helper()
	a, err := auth.New(auth.Config{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func startNode(t *testing.T, cfg node.Config, c node.Coordinator, st store.Store) *node.Node {
	t.Helper()
	n, err := node.Start(testenv.Context(t, 30*time.Second), cfg, node.Deps{Coord: c, Store: st, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

func getHealth(adminAddr string) (int, healthz.Report, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + adminAddr + "/healthz")
	if err != nil {
		return 0, healthz.Report{}, err
	}
	defer resp.Body.Close()
	var h healthz.Report
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return resp.StatusCode, h, fmt.Errorf("decode /healthz: %w", err)
	}
	return resp.StatusCode, h, nil
}

// TestStartServeClose starts a node in-process on a real ensemble and Redis: it registers,
// accepts an MQTT 5 client and records its presence, reports itself ready, and on Close
// leaves the live set, sends the client DISCONNECT 0x8B and clears the presence.
func TestStartServeClose(t *testing.T) {
	t.Parallel()
	c, st := backendsFor(t)
	n := startNode(t, testConfig(t, "node-1"), c, st)

	m := n.Member()
	if m.ID != "node-1" || m.Epoch == 0 || m.Instance == "" || m.Version == "" {
		t.Fatalf("member %+v, want node-1 registered with an epoch", m)
	}
	for _, a := range []string{m.MQTTAddr, m.InternalAddr, m.AdminAddr} {
		if !strings.HasPrefix(a, "127.0.0.1:") || strings.HasSuffix(a, ":0") {
			t.Fatalf("member address %q is not the bound loopback port (%+v)", a, m)
		}
	}
	live, err := c.Members(testenv.Context(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 || live[0] != m {
		t.Fatalf("live set %+v, want exactly the node's member %+v", live, m)
	}

	cl := testenv.ConnectMQTT(t, m.MQTTAddr, "client-1", testenv.MQTTOptions{CleanStart: true})
	if err := cl.Subscribe("inbox/client-1", 1); err != nil {
		t.Fatal(err)
	}
	p, _, err := st.Lookup(testenv.Context(t, 5*time.Second), "client-1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Node != "node-1" || p.Epoch != m.Epoch || p.Session == "" {
		t.Fatalf("presence of client-1 = %+v, want node-1@%#x", p, m.Epoch)
	}

	code, h, err := getHealth(m.AdminAddr)
	if err != nil {
		t.Fatal(err)
	}
	if code != 200 || !h.Ready || h.Node != "node-1" || h.State != "registered" || h.Epoch != m.Epoch || h.Clients != 1 {
		t.Fatalf("/healthz = %d %+v, want 200 ready, registered at %#x with 1 client", code, h, m.Epoch)
	}
	for _, name := range []string{"store", "disk", "memory", "accept"} {
		if ck, ok := h.Checks[name]; !ok || !ck.OK {
			t.Fatalf("check %s = %+v (present %v), want ok; all: %+v", name, ck, ok, h.Checks)
		}
	}

	select {
	case <-n.Done():
		t.Fatal("Done is closed while the node runs")
	default:
	}
	if err := n.Close(testenv.Context(t, 20*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-n.Done():
	default:
		t.Fatal("Done is open after Close")
	}
	select {
	case <-cl.Disconnected():
	case <-time.After(10 * time.Second):
		t.Fatal("the client got no DISCONNECT when the node closed")
	}
	if r := cl.DisconnectReason(); r != 0x8B {
		t.Fatalf("DISCONNECT reason %#x, want 0x8B (server shutting down)", r)
	}
	live, err = c.Members(testenv.Context(t, 5*time.Second))
	if err != nil || len(live) != 0 {
		t.Fatalf("live set after Close = %+v (%v), want empty", live, err)
	}
	p, _, err = st.Lookup(testenv.Context(t, 5*time.Second), "client-1")
	if err != nil || p.Online() {
		t.Fatalf("presence after Close = %+v (%v), want cleared", p, err)
	}
	if _, _, err := getHealth(m.AdminAddr); err == nil {
		t.Fatal("/healthz still answers after Close")
	}
	if conn, err := net.DialTimeout("tcp", m.MQTTAddr, time.Second); err == nil {
		conn.Close()
		t.Fatal("MQTT port still accepts after Close")
	}
	if err := n.Close(testenv.Context(t, 5*time.Second)); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestHealthReportsLowDisk: with a free-space minimum no disk meets, the disk check fails
// and /healthz answers 503 while the other checks pass.
func TestHealthReportsLowDisk(t *testing.T) {
	t.Parallel()
	c, st := backendsFor(t)
	cfg := testConfig(t, "node-disk")
	cfg.Health.MinFreeDisk = 1 << 62
	n := startNode(t, cfg, c, st)

	code, h, err := getHealth(n.Member().AdminAddr)
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable || h.Ready {
		t.Fatalf("/healthz = %d ready=%v, want 503 not ready", code, h.Ready)
	}
	disk, ok := h.Checks["disk"]
	if !ok || disk.OK {
		t.Fatalf("disk check = %+v (present %v), want failing", disk, ok)
	}
	if !strings.Contains(disk.Detail, cfg.DataDir) {
		t.Fatalf("disk detail %q does not name the data dir %s", disk.Detail, cfg.DataDir)
	}
	for _, name := range []string{"store", "memory", "accept"} {
		if ck := h.Checks[name]; !ck.OK {
			t.Fatalf("check %s = %+v, want ok (only the disk is short)", name, ck)
		}
	}
	// Low disk makes the node unready, not unregistered: it stays in the live set.
	if h.State != "registered" {
		t.Fatalf("state %q, want registered", h.State)
	}
}

// TestStartRefusesBusyPort: a port in use fails Start with an error naming the field, and
// nothing is left running (the leak check covers the goroutines, the registration is
// checked here).
func TestStartRefusesBusyPort(t *testing.T) {
	t.Parallel()
	c, st := backendsFor(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		field string
		set   func(*node.Config)
	}{
		{"MQTTAddr", func(c *node.Config) { c.MQTTAddr = busy.Addr().String() }},
		{"InternalAddr", func(c *node.Config) { c.InternalAddr = busy.Addr().String() }},
		{"AdminAddr", func(c *node.Config) { c.AdminAddr = busy.Addr().String() }},
	} {
		cfg := testConfig(t, "node-busy")
		tc.set(&cfg)
		// Bounds a refused start has no reason to wait out: one that does hangs the test.
		cfg.StoreTimeout, cfg.ShutdownTimeout = time.Hour, time.Hour
		type started struct {
			n   *node.Node
			err error
		}
		ch := make(chan started, 1)
		go func() {
			n, err := node.Start(testenv.Context(t, 20*time.Second), cfg, node.Deps{Coord: c, Store: st, Logger: testenv.Logger(t)})
			ch <- started{n, err}
		}()
		var n *node.Node
		select {
		case s := <-ch:
			n, err = s.n, s.err
		case <-time.After(time.Minute):
			t.Fatalf("%s on a busy port: Start neither failed nor returned within a minute", tc.field)
		}
		if err == nil {
			n.Close(context.Background())
			t.Fatalf("%s on a busy port: Start succeeded", tc.field)
		}
		if !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), busy.Addr().String()) {
			t.Fatalf("%s busy: error %q does not name the field and address", tc.field, err)
		}
	}
	if live, err := c.Members(testenv.Context(t, 5*time.Second)); err != nil || len(live) != 0 {
		t.Fatalf("after refused starts the live set is %+v (%v)", live, err)
	}
}

// TestConfigValidate: every refusal names the field at fault (and its value where it has
// one), and only that field.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	base := node.DefaultConfig()
	base.ID = "n1"
	base.Auth = anonymous(t)
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults with an id: %v", err)
	}
	for _, tc := range []struct {
		name   string
		set    func(*node.Config)
		want   []string
		reject []string // words that would blame another field
	}{
		{"empty id", func(c *node.Config) { c.ID = "" }, []string{"ID"}, nil},
		{"bad id", func(c *node.Config) { c.ID = "a/b" }, []string{"ID", `"a/b"`}, nil},
		{"mqtt no port", func(c *node.Config) { c.MQTTAddr = "localhost" }, []string{"MQTTAddr", `"localhost"`}, []string{"InternalAddr", "AdminAddr"}},
		{"mqtt bad port", func(c *node.Config) { c.MQTTAddr = "127.0.0.1:mqtt-please" }, []string{"MQTTAddr", "mqtt-please"}, nil},
		{"internal empty", func(c *node.Config) { c.InternalAddr = "" }, []string{"InternalAddr"}, []string{"MQTTAddr", "AdminAddr"}},
		{"admin bad host", func(c *node.Config) { c.AdminAddr = "my host:80" }, []string{"AdminAddr", "my host"}, []string{"MQTTAddr", "InternalAddr"}},
		{"inbox prefix empty", func(c *node.Config) { c.InboxPrefix = "" }, []string{"InboxPrefix"}, nil},
		{"inbox prefix plus", func(c *node.Config) { c.InboxPrefix = "in/+/" }, []string{"InboxPrefix", `"in/+/"`}, nil},
		{"inbox prefix hash", func(c *node.Config) { c.InboxPrefix = "#" }, []string{"InboxPrefix", `"#"`}, nil},
		{"max packet size", func(c *node.Config) { c.Limits.MaxPacketSize = 0 }, []string{"Limits.MaxPacketSize", `"0"`}, nil},
		{"max clients", func(c *node.Config) { c.Limits.MaxClients = 0 }, []string{"Limits.MaxClients", `"0"`}, nil},
		{"max session expiry", func(c *node.Config) { c.Limits.MaxSessionExpiry = 0 }, []string{"Limits.MaxSessionExpiry"}, nil},
		{"max keepalive", func(c *node.Config) { c.Limits.MaxKeepAlive = node.MaxServerKeepAlive + 1 }, []string{"Limits.MaxKeepAlive", `"43691s"`}, nil},
		{"receive maximum", func(c *node.Config) { c.Limits.ReceiveMaximum = 0 }, []string{"Limits.ReceiveMaximum", `"0"`}, []string{"Inflight", "WritesPending"}},
		{"max inflight", func(c *node.Config) { c.Limits.MaxInflight = 0 }, []string{"Limits.MaxInflight", `"0"`}, []string{"ReceiveMaximum", "WritesPending"}},
		{"writes pending", func(c *node.Config) { c.Limits.WritesPending = 0 }, []string{"Limits.WritesPending", `"0"`}, []string{"ReceiveMaximum", "Inflight"}},
		{"max wait", func(c *node.Config) { c.MaxWait = 0 }, []string{"MaxWait", `"0s"`}, []string{"StoreTimeout", "Shutdown", "Health"}},
		{"store timeout", func(c *node.Config) { c.StoreTimeout = -time.Second }, []string{"StoreTimeout", `"-1s"`}, []string{"MaxWait", "Shutdown", "Health"}},
		{"shutdown timeout", func(c *node.Config) { c.ShutdownTimeout = 0 }, []string{"ShutdownTimeout", `"0s"`}, []string{"MaxWait", "StoreTimeout", "Health"}},
		{"health interval", func(c *node.Config) { c.Health.Interval = 0 }, []string{"Health.Interval", `"0s"`}, []string{"MaxWait", "StoreTimeout", "Shutdown"}},
		{"drain batch", func(c *node.Config) { c.DrainBatch = 0 }, []string{"DrainBatch", `"0"`}, []string{"MailboxLimit"}},
		{"mailbox limit", func(c *node.Config) { c.MailboxLimit = -1 }, []string{"MailboxLimit", `"-1"`}, []string{"DrainBatch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.set(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not contain %q", err, w)
				}
			}
			for _, r := range tc.reject {
				if strings.Contains(err.Error(), r) {
					t.Fatalf("error %q blames %q, which is fine", err, r)
				}
			}
		})
	}
	// Validate has no side effects: a refused config starts nothing.
	bad := base
	bad.MQTTAddr = "nonsense"
	if _, err := node.Start(context.Background(), bad, node.Deps{Logger: testenv.Logger(t)}); err == nil || !strings.Contains(err.Error(), "MQTTAddr") {
		t.Fatalf("Start with a bad config: %v, want the validation error", err)
	}
}

// TestHealthzNamesTheInstanceWhileRegistering: a node started while its predecessor's entry
// is still live waits in Register for it to go; meanwhile /healthz answers 503 in state
// registering with the node's own instance, so that a monitor probing the predecessor's
// entry at the same address can tell the two processes apart. Once the entry has gone the
// node registers and serves the full report, under the same instance.
func TestHealthzNamesTheInstanceWhileRegistering(t *testing.T) {
	t.Parallel()
	cl := memcoord.NewCluster()
	ctx := testenv.Context(t, 20*time.Second)
	predecessor := testenv.OpenMemCoord(t, cl)
	old := coordtest.NewMember("node-1")
	reg, err := predecessor.Register(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "node-1")
	cfg.AdminAddr = testenv.RefusedAddr(t)
	started := make(chan *node.Node, 1)
	go func() {
		n, err := node.Start(ctx, cfg, node.Deps{Coord: testenv.OpenMemCoord(t, cl), Store: testenv.EmbeddedStore(t), Logger: testenv.Logger(t)})
		if err != nil {
			t.Errorf("node.Start: %v", err)
		}
		started <- n
	}()
	var waiting healthz.Report
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		code, h, err := getHealth(cfg.AdminAddr)
		if err == nil && (code != http.StatusServiceUnavailable || h.State != "registering" || h.Node != "node-1" || h.Instance == "") {
			err = fmt.Errorf("/healthz %d %+v, want 503 registering with node-1's instance", code, h)
		}
		waiting = h
		return err
	})
	if waiting.Instance == old.Instance {
		t.Fatalf("the waiting node reports its predecessor's instance %q", old.Instance)
	}
	if err := reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	n := <-started
	if n == nil {
		t.FailNow()
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	// Registered is not yet ready (the delivery lease comes first): wait for the readiness.
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		code, h, err := getHealth(cfg.AdminAddr)
		if err == nil && (code != http.StatusOK || h.State != "registered" || h.Instance != waiting.Instance || h.Instance != n.Member().Instance) {
			err = fmt.Errorf("/healthz %d %+v, want 200 registered with instance %q", code, h, waiting.Instance)
		}
		return err
	})
}

// TestSubscriptionLimits: a session holds at most Limits.MaxSubscriptions filters, its own
// inbox not counted, none longer than MaxFilterLength; the rest are refused 0x97 Quota
// exceeded, stored nowhere (not in the session, not routed), while the filters within the
// limits of the same SUBSCRIBE are granted. A security trial grew every node's heap to
// hundreds of MiB with one client's 2,400 filters of 60 KB each.
func TestSubscriptionLimits(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "limits-1")
	cfg.Auth = openACL(t)
	cfg.Limits.MaxSubscriptions, cfg.Limits.MaxFilterLength = 3, 32
	n := startNode(t, cfg, testenv.OpenMemCoord(t, memcoord.NewCluster()), testenv.EmbeddedStore(t))
	c := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "greedy", testenv.MQTTOptions{CleanStart: true})
	want := func(filters []string, codes ...byte) {
		t.Helper()
		got, err := c.SubscribeCodes(filters...)
		if err != nil || !bytes.Equal(got, codes) {
			t.Fatalf("subscribe %q: codes %x, %v; want %x", filters, got, err, codes)
		}
	}
	long := "t/" + strings.Repeat("x", 31) // 33 bytes
	want([]string{"t/1", long, "t/2"}, 1, 0x97, 1)
	want([]string{"t/2", "t/3", "t/4", "t/5"}, 1, 1, 0x97, 0x97) // t/2 again is not a new one
	want([]string{"inbox/greedy", "t/1"}, 1, 1)                  // the inbox does not count; t/1 is held
	if session, routed := n.SessionFiltersForTest("greedy"); session != 4 || routed != 3 {
		t.Fatalf("the session holds %d filters and the node routes %d, want 4 (t/1-3 and the inbox) and 3", session, routed)
	}
}

// TestPublishToSysIsRefused: a QoS 1 or 2 publish to $SYS is refused as a denied publish
// is, so the client is answered: MQTT 5 gets PUBACK (PUBREC) 0x87 and stays connected,
// MQTT 3.1.1 is disconnected. mochi dropped it without an answer, and the publisher waited
// for its acknowledgement forever. Nothing reaches a $SYS subscriber.
func TestPublishToSysIsRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "sys-1")
	// Even a rule naming $SYS does not make it writable: mochi never routes such a publish.
	cfg.Auth, _ = anonymousAuth(t, `{"acl": [{"topic": "t/#", "access": "readwrite"}, {"topic": "$SYS/#", "access": "readwrite"}]}`)
	n := startNode(t, cfg, testenv.OpenMemCoord(t, memcoord.NewCluster()), testenv.EmbeddedStore(t))
	addr := n.Member().MQTTAddr
	watcher := testenv.ConnectMQTT(t, addr, "sys-watcher", testenv.MQTTOptions{CleanStart: true})
	if err := watcher.Subscribe("$SYS/fake/#", 1); err != nil {
		t.Fatal(err)
	}
	v5 := testenv.ConnectMQTT(t, addr, "sys-v5", testenv.MQTTOptions{CleanStart: true})
	for _, qos := range []byte{1, 2} {
		code, err := v5.PublishProps("$SYS/fake/broker/uptime", []byte("forged"), qos, nil, 0)
		if code != 0x87 {
			t.Fatalf("MQTT 5 QoS %d publish to $SYS: reason %#x (%v), want 0x87", qos, code, err)
		}
	}
	if code, err := v5.PublishProps("t/ok", []byte("still connected"), 1, nil, 0); err != nil || code != 0 {
		t.Fatalf("MQTT 5 client after the refusals: %#x %v", code, err)
	}
	publishDisconnectsV3(t, addr, "sys-v3", "$SYS/fake/broker/uptime")
	select {
	case m := <-watcher.Messages():
		t.Fatalf("a $SYS subscriber got %q on %s", m.Payload, m.Topic)
	default:
	}
	if v := n.ACLDeniedForTest("publish"); v != 3 {
		t.Fatalf("publish denials counted %v, want 3", v)
	}
}

// TestPublishWithAWildcardTopicDisconnects: a PUBLISH whose topic name holds + or # is a
// malformed packet [MQTT-3.3.2-2]: the client is disconnected (MQTT 5 with DISCONNECT 0x90
// topic name invalid, the code MQTT gives for it; mochi sent 0x82 protocol error) and its
// Will is sent, as mosquitto does.
func TestPublishWithAWildcardTopicDisconnects(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "wild-1")
	cfg.Auth = openACL(t)
	n := startNode(t, cfg, testenv.OpenMemCoord(t, memcoord.NewCluster()), testenv.EmbeddedStore(t))
	addr := n.Member().MQTTAddr
	watcher := testenv.ConnectMQTT(t, addr, "wild-watcher", testenv.MQTTOptions{CleanStart: true})
	if err := watcher.Subscribe("t/will/#", 1); err != nil {
		t.Fatal(err)
	}
	v5 := testenv.ConnectMQTT(t, addr, "wild-v5", testenv.MQTTOptions{CleanStart: true, Will: &paho.WillMessage{Topic: "t/will/v5", Payload: []byte("gone"), QoS: 1}})
	published := make(chan error, 1)
	go func() { _, err := v5.PublishProps("t/+/x", []byte("wild"), 1, nil, 0); published <- err }() // answered by the disconnect
	defer func() { v5.Close(); <-published }()
	select {
	case <-v5.Disconnected():
	case <-time.After(5 * time.Second):
		t.Fatal("MQTT 5 publish to t/+/x: still connected, want DISCONNECT 0x90")
	}
	if r := v5.DisconnectReason(); r != 0x90 {
		t.Fatalf("MQTT 5 publish to t/+/x: DISCONNECT %#x, want 0x90 topic name invalid", r)
	}
	if m, err := watcher.Next(5 * time.Second); err != nil || m.Topic != "t/will/v5" {
		t.Fatalf("the Will of the disconnected client: %+v %v", m, err)
	}
	publishDisconnectsV3(t, addr, "wild-v3", "t/#")
}

// publishDisconnectsV3 connects an MQTT 3.1.1 client as id, publishes to topic at QoS 1
// and waits for the node to close the connection: 3.1.1 has no way to refuse a publish but
// that.
func publishDisconnectsV3(t *testing.T, addr, id, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v3, err := mqttclient.Dial(ctx, addr, mqttclient.Options{ID: id, Version: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer v3.Close()
	v3.Start()
	if _, err := v3.Publish(ctx, topic, []byte("refused"), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-v3.Done():
	case <-ctx.Done():
		t.Fatalf("MQTT 3.1.1 publish to %s: still connected, want disconnected", topic)
	}
}

// quarantine marks node quarantined as the monitor's leader does and returns that
// monitor's coordinator (to release the mark with) and a context for the test's calls.
func quarantine(t *testing.T, cl *memcoord.Cluster, node string) (*memcoord.Coordinator, context.Context) {
	t.Helper()
	mon := testenv.OpenMemCoord(t, cl)
	ctx := testenv.Context(t, 30*time.Second)
	lead, err := mon.Campaign(ctx, "monitor", "mon")
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.SetQuarantine(ctx, coord.Quarantine{Node: node, Reason: "test", At: time.Now(), By: "mon"}, lead); err != nil {
		t.Fatal(err)
	}
	return mon, ctx
}

// TestQuarantinedOutOfTheLiveSetMovesClientsAtOnce: a node whose session ended while it was
// marked (frozen past its session timeout: fenced when it thaws) finds the mark as it
// registers again, out of the live set and of the load balancer already. It moves its
// clients off at once instead of waiting the grace period, which exists only to take a
// live node out of the load balancer first (a trial's clients waited 10 s more on a node
// nobody routed to).
func TestQuarantinedOutOfTheLiveSetMovesClientsAtOnce(t *testing.T) {
	t.Parallel()
	cl := memcoord.NewCluster()
	cfg := testConfig(t, "qo-1")
	cfg.Quarantine.Grace, cfg.Quarantine.MoveRate = time.Minute, 100
	nc := testenv.OpenMemCoord(t, cl)
	n := startNode(t, cfg, nc, testenv.EmbeddedStore(t))
	var clients []*testenv.MQTTClient
	for i := range 20 {
		clients = append(clients, testenv.ConnectMQTT(t, n.Member().MQTTAddr, fmt.Sprintf("qo-c%d", i), testenv.MQTTOptions{CleanStart: true}))
	}
	quarantine(t, cl, "qo-1")
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, h, err := getHealth(n.Member().AdminAddr); err != nil || h.Gate != "quarantined" {
			return fmt.Errorf("gate %q, %v", h.Gate, err)
		}
		return nil
	})
	nc.ExpireSession() // fenced; registering again finds the mark
	deadline := time.After(10 * time.Second)
	for i, c := range clients {
		select {
		case <-c.Done():
		case <-deadline:
			t.Fatalf("client %d of %d still connected 10s after the node left the live set (grace %v)", i+1, len(clients), cfg.Quarantine.Grace)
		}
	}
}

// TestConnackAdvertisesTheLimits: an MQTT 5 CONNACK names the node's Topic Alias Maximum and
// Maximum Packet Size, which it enforces; mochi sent neither, so a client had to take the
// alias maximum for 0 and could not know the packet limit.
func TestConnackAdvertisesTheLimits(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "connack-1")
	cfg.Auth = openACL(t)
	cfg.Limits.TopicAliasMax, cfg.Limits.MaxPacketSize = 12, 300_000
	n := startNode(t, cfg, testenv.OpenMemCoord(t, memcoord.NewCluster()), testenv.EmbeddedStore(t))
	c := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "limits-v5", testenv.MQTTOptions{CleanStart: true})
	p := c.Connack.Properties
	if p == nil || p.TopicAliasMaximum == nil || *p.TopicAliasMaximum != 12 || p.MaximumPacketSize == nil || *p.MaximumPacketSize != 300_000 {
		t.Fatalf("CONNACK properties %+v, want topic alias maximum 12 and maximum packet size 300000", p)
	}
}

// TestExpiredInFlightMessagesGiveTheirSlotBack: QoS 1 messages that expire while a
// connected MQTT 5 client has not acknowledged them free their slots of its Receive
// Maximum. mochi deleted them without giving the slots back: a client with Receive Maximum
// 2 whose two unacknowledged messages expired received no QoS 1 message again.
func TestExpiredInFlightMessagesGiveTheirSlotBack(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "quota-1")
	cfg.Auth = openACL(t)
	n := startNode(t, cfg, testenv.OpenMemCoord(t, memcoord.NewCluster()), testenv.EmbeddedStore(t))
	addr := n.Member().MQTTAddr
	slow := testenv.ConnectMQTT(t, addr, "slow-acker", testenv.MQTTOptions{CleanStart: true, ManualAck: true, ReceiveMaximum: 2})
	if err := slow.Subscribe("t/q", 1); err != nil {
		t.Fatal(err)
	}
	pub := testenv.ConnectMQTT(t, addr, "pub-q", testenv.MQTTOptions{CleanStart: true})
	for i := range 2 {
		if code, err := pub.PublishProps("t/q", []byte(fmt.Sprint("short-", i)), 1, nil, 1); err != nil || code != 0 {
			t.Fatalf("publish %d: %#x %v", i, code, err)
		}
		if _, err := slow.Next(5 * time.Second); err != nil { // received, never acknowledged
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		if k := n.InflightForTest("slow-acker"); k != 0 {
			return fmt.Errorf("%d unacknowledged messages not expired yet", k)
		}
		return nil
	})
	if err := pub.Publish("t/q", []byte("after the expiry"), 1); err != nil {
		t.Fatal(err)
	}
	m, err := slow.Next(5 * time.Second)
	if err != nil || string(m.Payload) != "after the expiry" {
		t.Fatalf("after its two in-flight messages expired the client got %q, %v; want the next message", m.Payload, err)
	}
}

// TestPublishWithAnInvalidUTF8PayloadIsRefused: an MQTT 5 PUBLISH whose payload format
// indicator says UTF-8 on a payload that is not reaches no subscriber: QoS 0 is dropped and
// QoS 1 gets PUBACK 0x99 payload format invalid (the connection stays), as mosquitto does;
// QoS 2 a DISCONNECT 0x99. A valid one, and invalid bytes without the indicator, pass.
func TestPublishWithAnInvalidUTF8PayloadIsRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "pfi-1")
	cfg.Auth = openACL(t)
	n := startNode(t, cfg, testenv.OpenMemCoord(t, memcoord.NewCluster()), testenv.EmbeddedStore(t))
	addr := n.Member().MQTTAddr
	watcher := testenv.ConnectMQTT(t, addr, "pfi-watcher", testenv.MQTTOptions{CleanStart: true})
	if err := watcher.Subscribe("t/pfi/#", 1); err != nil {
		t.Fatal(err)
	}
	utf8 := byte(1)
	publish := func(c *testenv.MQTTClient, topic string, payload []byte, qos byte, pfi *byte) (byte, error) {
		return c.PublishPacket(&paho.Publish{Topic: topic, Payload: payload, QoS: qos,
			Properties: &paho.PublishProperties{PayloadFormat: pfi}})
	}
	v5 := testenv.ConnectMQTT(t, addr, "pfi-v5", testenv.MQTTOptions{CleanStart: true})
	if code, _ := publish(v5, "t/pfi/bad", []byte{0xff, 0xfe}, 1, &utf8); code != 0x99 {
		t.Fatalf("QoS 1 invalid UTF-8 with PFI 1: reason %#x, want 0x99", code)
	}
	if _, err := publish(v5, "t/pfi/bad0", []byte{0xc3, 0x28}, 0, &utf8); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		topic   string
		payload []byte
		pfi     *byte
	}{{"t/pfi/text", []byte("héllo"), &utf8}, {"t/pfi/bytes", []byte{0xff, 0xfe}, nil}} {
		if code, err := publish(v5, p.topic, p.payload, 1, p.pfi); code != 0 || err != nil {
			t.Fatalf("%s: reason %#x %v, want accepted", p.topic, code, err)
		}
		if m, err := watcher.Next(5 * time.Second); err != nil || m.Topic != p.topic {
			t.Fatalf("%s: the subscriber got %+v %v", p.topic, m, err)
		}
	}
	published := make(chan error, 1)
	go func() { _, err := publish(v5, "t/pfi/bad2", []byte{0xc3}, 2, &utf8); published <- err }() // answered by the disconnect
	defer func() { v5.Close(); <-published }()
	select {
	case <-v5.Disconnected():
	case <-time.After(5 * time.Second):
		t.Fatal("QoS 2 invalid UTF-8 with PFI 1: still connected, want DISCONNECT 0x99")
	}
	if r := v5.DisconnectReason(); r != 0x99 {
		t.Fatalf("QoS 2 invalid UTF-8 with PFI 1: DISCONNECT %#x, want 0x99", r)
	}
	select {
	case m := <-watcher.Messages():
		t.Fatalf("a subscriber got the invalid payload on %s", m.Topic)
	default:
	}
}
