package node_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/node"
)

// metricValue reads one sample (name and labels, as exposed) from a node's /metrics; 0 if
// it is not there yet.
func metricValue(t *testing.T, n *node.Node, sample string) float64 {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + n.Member().AdminAddr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			if _, err := fmt.Sscanf(rest, "%g", &v); err != nil {
				t.Fatalf("metrics: %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

const willsDenied = `switchboard_node_acl_denied_total{action="will"}`

// willClient connects id with a QoS 1 Will on topic delayed by delay seconds, for a
// session of expiry seconds.
func willClient(t *testing.T, n *node.Node, id, topic string, delay, expiry uint32) *testenv.MQTTClient {
	t.Helper()
	return testenv.ConnectMQTT(t, n.Member().MQTTAddr, id, testenv.MQTTOptions{
		CleanStart: true, SessionExpiry: expiry, WillDelay: delay,
		Will: &paho.WillMessage{Topic: topic, Payload: []byte(id + " gone"), QoS: 1},
	})
}

// awaitConnections waits until n holds k connections: a dropped client's Will has then
// been handed to OnWill (mochi does that before the connection's OnDisconnect).
func awaitConnections(t *testing.T, n *node.Node, k int64) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if c := n.ConnectedForTest(); c != k {
			return fmt.Errorf("%d connections, want %d", c, k)
		}
		return nil
	})
}

// TestDelayedWillCheckedWhenSent: a Will with a delay is checked against the client's rules
// when it is sent, not only when the connection ends. Two clients may publish their Wills
// when they drop their connections; during the delay the rules are reloaded without one's
// Will topic. That Will reaches nobody (counted as a refused Will); the other arrives after
// its delay. A third client, still connected at the reload, with a Will without delay on
// the topic no longer allowed, drops its connection after it: its Will reaches nobody
// either (checked as it is sent; the reload must not touch a connected client's Will,
// which mochi reads on the client's goroutine).
func TestDelayedWillCheckedWhenSent(t *testing.T) {
	t.Parallel()
	const rules = `{"acl": [{"topic": "w/#", "access": "read"}, {"topic": "w/ok/#", "access": "write"}%s]}`
	a, file := anonymousAuth(t, fmt.Sprintf(rules, `, {"topic": "w/gone/#", "access": "write"}`))
	c, st := backendsFor(t)
	cfg := testConfig(t, "will-acl")
	cfg.Auth = a
	n := startNode(t, cfg, c, st)
	watcher := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "watcher", testenv.MQTTOptions{CleanStart: true})
	if err := watcher.Subscribe("w/#", 1); err != nil {
		t.Fatal(err)
	}

	const delay = 3 * time.Second
	kept := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "dev-kept", testenv.MQTTOptions{
		CleanStart: true, SessionExpiry: 60, WillDelay: uint32(delay / time.Second),
		Will: &paho.WillMessage{Topic: "w/ok/dev-kept", Payload: []byte("dev-kept gone"), QoS: 1, Retain: true},
	})
	revoked := willClient(t, n, "dev-revoked", "w/gone/dev-revoked", uint32(delay/time.Second), 60)
	standing := willClient(t, n, "dev-standing", "w/gone/dev-standing", 0, 0)
	dropped := time.Now()
	kept.Drop()
	revoked.Drop()
	awaitConnections(t, n, 2)
	before := metricValue(t, n, willsDenied)
	if err := os.WriteFile(file, fmt.Appendf(nil, rules, ""), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(dropped); d > delay-time.Second {
		t.Fatalf("the rules were reloaded %v after the connections dropped: too close to the delay (%v) to tell", d, delay)
	}
	standing.Drop()

	// Done when the refusal is counted and the allowed Will has arrived; the refused one
	// would have been published at the same moment as the refusal, before the allowed one.
	deadline := time.After(delay + 10*time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var keptAt time.Duration
	for keptAt == 0 || metricValue(t, n, willsDenied) < before+2 {
		select {
		case m := <-watcher.Messages():
			switch m.Topic {
			case "w/gone/dev-revoked", "w/gone/dev-standing":
				t.Fatalf("the Will on %s was published %v after the connection dropped, although the rules no longer allowed it", m.Topic, time.Since(dropped))
			case "w/ok/dev-kept":
				keptAt = time.Since(dropped)
			default:
				t.Fatalf("unexpected message %q on %s", m.Payload, m.Topic)
			}
		case <-tick.C:
		case <-deadline:
			t.Fatalf("after %v: allowed Will received after %v (0: not yet), refused Wills counted %v (before: %v)",
				time.Since(dropped), keptAt, metricValue(t, n, willsDenied), before)
		}
	}
	if keptAt < delay {
		t.Fatalf("the allowed Will came %v after the connection dropped, before its delay of %v", keptAt, delay)
	}
	if m, err := watcher.Next(300 * time.Millisecond); err == nil {
		t.Fatalf("unexpected message %q on %s", m.Payload, m.Topic)
	}
	// The allowed Will asked to be retained: it was.
	late := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "late", testenv.MQTTOptions{CleanStart: true})
	if err := late.Subscribe("w/#", 1); err != nil {
		t.Fatal(err)
	}
	if m, err := late.Next(5 * time.Second); err != nil || m.Topic != "w/ok/dev-kept" || !m.Retain {
		t.Fatalf("a new subscriber got %+v, %v; want the retained Will on w/ok/dev-kept", m, err)
	}
	if m, err := late.Next(300 * time.Millisecond); err == nil {
		t.Fatalf("a new subscriber got %q on %s too", m.Payload, m.Topic)
	}
}

// TestDelayedWillOfAnEndingSessionIsSentAtOnce: a Will is sent when its delay has passed or
// when the session ends, whichever comes first [MQTT-3.1.3-9]. With a delay of a minute, a
// session of 0 sends it at once; one of 1s after about 1s; one of a minute on a node that
// caps sessions at 2s after about 2s.
func TestDelayedWillOfAnEndingSessionIsSentAtOnce(t *testing.T) {
	t.Parallel()
	c, st := backendsFor(t)
	cfg := testConfig(t, "will-expiry")
	cfg.Auth = openACL(t)
	cfg.Limits.MaxSessionExpiry = 2
	n := startNode(t, cfg, c, st)
	watcher := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "watcher", testenv.MQTTOptions{CleanStart: true})
	if err := watcher.Subscribe("t/#", 1); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]time.Duration{ // the Will's topic: its earliest and latest arrival
		"t/will/dev-0s":     {0, 5 * time.Second},
		"t/will/dev-1s":     {time.Second, 6 * time.Second},
		"t/will/dev-capped": {2 * time.Second, 7 * time.Second},
	}
	clients := []*testenv.MQTTClient{
		willClient(t, n, "dev-0s", "t/will/dev-0s", 60, 0),
		willClient(t, n, "dev-1s", "t/will/dev-1s", 60, 1),
		willClient(t, n, "dev-capped", "t/will/dev-capped", 60, 60),
	}
	dropped := time.Now()
	for _, cl := range clients {
		cl.Drop()
	}
	got := map[string]time.Duration{}
	for len(got) < len(want) {
		m, err := watcher.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("Wills received %v: %v (the delay is 60s, the sessions end after 0s, 1s and 2s)", got, err)
		}
		got[m.Topic] = time.Since(dropped)
	}
	for topic, w := range want {
		if d, ok := got[topic]; !ok || d < w[0] || d > w[1] {
			t.Errorf("the Will on %s came %v after the connection dropped (received: %v), want within [%v, %v]", topic, d, ok, w[0], w[1])
		}
	}
}

// TestDelayedWillCancelledByReconnect: a client that connects again during its Will's
// delay cancels the Will [MQTT-3.1.3-9], whether it comes back to the same node or to
// another one. A third client's Will, with the same delay and dropped later, is sent: once
// it has arrived, the others would have too.
func TestDelayedWillCancelledByReconnect(t *testing.T) {
	t.Parallel()
	ns := twoNodes(t, "will-back")
	watcher := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "watcher", testenv.MQTTOptions{CleanStart: true})
	if err := watcher.Subscribe("t/#", 1); err != nil {
		t.Fatal(err)
	}
	const delay = 3
	here := willClient(t, ns[0], "dev-here", "t/will/dev-here", delay, 60)
	there := willClient(t, ns[0], "dev-there", "t/will/dev-there", delay, 60)
	dropped := time.Now()
	here.Drop()
	there.Drop()
	awaitConnections(t, ns[0], 1)
	for i, id := range []string{"dev-here", "dev-there"} {
		testenv.ConnectMQTT(t, ns[i].Member().MQTTAddr, id, testenv.MQTTOptions{SessionExpiry: 60})
	}
	if d := time.Since(dropped); d > delay*time.Second-time.Second {
		t.Fatalf("the clients connected again %v after they dropped: too close to the delay (%ds) to tell", d, delay)
	}
	onlyTheControlWill(t, ns[0], watcher, delay, "the client had connected again")
}

// onlyTheControlWill drops a client with a Will of the same delay on n and waits for that
// Will: watcher must get nothing before it, nor just after it (the Wills that were due no
// later than it and must not come, for the reason why).
func onlyTheControlWill(t *testing.T, n *node.Node, watcher *testenv.MQTTClient, delay uint32, why string) {
	t.Helper()
	control := willClient(t, n, "dev-control", "t/will/dev-control", delay, 60)
	control.Drop()
	for {
		m, err := watcher.Next(time.Duration(delay)*time.Second + 10*time.Second)
		if err != nil {
			t.Fatalf("the control Will did not come: %v", err)
		}
		if m.Topic == "t/will/dev-control" {
			break
		}
		t.Fatalf("got %q on %s before the control Will: %s", m.Payload, m.Topic, why)
	}
	if m, err := watcher.Next(300 * time.Millisecond); err == nil {
		t.Fatalf("got %q on %s after the control Will: %s", m.Payload, m.Topic, why)
	}
}

// TestRevokedSessionsWillIsDropped: a session ended because the credentials no longer
// admit it (here: anonymous clients whose ids a user now owns) is disconnected with 0x87
// and its Will, with a delay or without, reaches nobody. A Will with the same delay of a
// client dropped after them is sent: once it has arrived, theirs would have too.
func TestRevokedSessionsWillIsDropped(t *testing.T) {
	t.Parallel()
	const acl = `"acl": [{"topic": "t/#", "access": "readwrite"}]`
	a, file := anonymousAuth(t, "{"+acl+"}")
	c, st := backendsFor(t)
	cfg := testConfig(t, "will-revoked")
	cfg.Auth = a
	n := startNode(t, cfg, c, st)
	watcher := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "watcher", testenv.MQTTOptions{CleanStart: true})
	if err := watcher.Subscribe("t/#", 1); err != nil {
		t.Fatal(err)
	}
	const delay = 1
	revoked := []*testenv.MQTTClient{
		willClient(t, n, "dev-rv", "t/will/dev-rv", 0, 0),
		willClient(t, n, "dev-rv-delayed", "t/will/dev-rv-delayed", delay, 60),
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("owner-pw"), 10)
	if err != nil {
		t.Fatal(err)
	}
	users := fmt.Sprintf(`"users": {"owner": {"password": %q, "clients": ["dev-rv", "dev-rv-delayed"]}}`, hash)
	if err := os.WriteFile(file, []byte("{"+acl+", "+users+"}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, cl := range revoked {
		select {
		case <-cl.Disconnected():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s got no DISCONNECT within 10s of the reload that revoked its session", cl.ID)
		}
		if r := cl.DisconnectReason(); r != 0x87 {
			t.Fatalf("%s was disconnected with 0x%02x, want 0x87", cl.ID, r)
		}
	}
	awaitConnections(t, n, 1) // their Wills have been handed to OnWill
	onlyTheControlWill(t, n, watcher, delay, "the session had been revoked")
}

// TestWillKeepsItsProperties: a Will reaches subscribers with the MQTT 5 properties its
// CONNECT gave it [MQTT-3.1.3-10] (payload format, content type, response topic,
// correlation data, message expiry and user properties, in order), without a delay and
// with one, on the node the client was connected to and on another one. mochi v2.7.9 kept
// only the user properties. (The Will's CONNECT is written by hand: paho.golang v0.23.0
// sends only a Will's delay and user properties.)
func TestWillKeepsItsProperties(t *testing.T) {
	t.Parallel()
	ns := twoNodes(t, "will-props")
	var watchers []*testenv.MQTTClient // a SUBACK waits for the other node to route to it
	for i, n := range ns {
		w := testenv.ConnectMQTT(t, n.Member().MQTTAddr, fmt.Sprintf("watcher-%d", i), testenv.MQTTOptions{CleanStart: true})
		if err := w.Subscribe("t/#", 1); err != nil {
			t.Fatal(err)
		}
		watchers = append(watchers, w)
	}
	const expiry = 600
	for _, delay := range []uint32{0, 1} {
		id := fmt.Sprintf("dev-delay-%d", delay)
		conn, code := willConnect(t, ns[0].Member().MQTTAddr, id, "t/will/"+id, false, []byte(`{"gone":true}`), packets.Properties{
			WillDelayInterval: delay, PayloadFormat: 1, PayloadFormatFlag: true, MessageExpiryInterval: expiry,
			ContentType: "application/json", ResponseTopic: "t/reply", CorrelationData: []byte{0, 1, 0xff},
			User: []packets.UserProperty{{Key: "k", Val: "1"}, {Key: "k", Val: "2"}},
		})
		if code != 0 {
			t.Fatalf("%s: CONNACK 0x%02x", id, code)
		}
		conn.Close() // no DISCONNECT: the Will is due
		for i, w := range watchers {
			m, err := w.Next(10 * time.Second)
			if err != nil {
				t.Fatalf("%s: no Will on node %d: %v", id, i+1, err)
			}
			p := m.Props
			if m.Topic != "t/will/"+id || p == nil {
				t.Fatalf("%s: node %d delivered %q on %s with properties %+v", id, i+1, m.Payload, m.Topic, p)
			}
			if p.PayloadFormat == nil || *p.PayloadFormat != 1 || p.ContentType != "application/json" ||
				p.ResponseTopic != "t/reply" || string(p.CorrelationData) != "\x00\x01\xff" ||
				p.MessageExpiry == nil || *p.MessageExpiry == 0 || *p.MessageExpiry > expiry ||
				fmt.Sprint(m.UserList) != "[[k 1] [k 2]]" {
				t.Errorf("%s: node %d delivered the Will with format %v, content type %q, response topic %q, correlation %q, expiry %v, user %v",
					id, i+1, ptr(p.PayloadFormat), p.ContentType, p.ResponseTopic, p.CorrelationData, ptr(p.MessageExpiry), m.UserList)
			}
		}
	}
}

// TestWillWithAnInvalidUTF8PayloadIsRefused: a Will whose payload format indicator says
// UTF-8 on a payload that is not is refused at CONNECT with 0x99 (payload format invalid),
// as mosquitto does, rather than published to subscribers that were promised text; the
// same Will without the indicator is accepted. A Will topic with a wildcard, which cannot
// be published, is refused with 0x90 (topic name invalid).
func TestWillWithAnInvalidUTF8PayloadIsRefused(t *testing.T) {
	t.Parallel()
	ns := twoNodes(t, "will-utf8")
	addr := ns[0].Member().MQTTAddr
	utf8 := packets.Properties{PayloadFormat: 1, PayloadFormatFlag: true}
	for _, c := range []struct {
		name, topic string
		wp          packets.Properties
		want        byte
	}{
		{"a Will marked UTF-8 on a payload that is not", "t/will/a", utf8, 0x99},
		{"a binary Will", "t/will/b", packets.Properties{}, 0},
		{"a Will on a topic with a wildcard", "t/will/#", packets.Properties{}, 0x90},
	} {
		if _, code := willConnect(t, addr, "dev-will", c.topic, false, []byte{0xff, 0xfe}, c.wp); code != c.want {
			t.Errorf("CONNECT with %s: CONNACK 0x%02x, want 0x%02x", c.name, code, c.want)
		}
	}
}

// TestRetainedWillExpires: a retained Will with a Message Expiry Interval is retained until
// it expires, on the node that published it and on the other one, and then on neither.
func TestRetainedWillExpires(t *testing.T) {
	t.Parallel()
	ns := twoNodes(t, "will-expiry")
	watcher := testenv.ConnectMQTT(t, ns[1].Member().MQTTAddr, "watcher", testenv.MQTTOptions{CleanStart: true})
	if err := watcher.Subscribe("t/#", 1); err != nil {
		t.Fatal(err)
	}
	const topic = "t/will/dev-retained"
	conn, code := willConnect(t, ns[0].Member().MQTTAddr, "dev-retained", topic, true, []byte("gone"),
		packets.Properties{MessageExpiryInterval: 2})
	if code != 0 {
		t.Fatalf("CONNACK 0x%02x", code)
	}
	conn.Close()
	if m, err := watcher.Next(10 * time.Second); err != nil || m.Topic != topic {
		t.Fatalf("the Will did not come: %s %v", m.Topic, err)
	}
	published := time.Now()
	for i, n := range ns {
		if !n.RetainedForTest(topic) {
			t.Fatalf("node %d does not hold the retained Will", i+1)
		}
	}
	// Expiry is a matter of time: look until well past it.
	testenv.Eventually(t, 15*time.Second, 50*time.Millisecond, func() error {
		for i, n := range ns {
			if n.RetainedForTest(topic) {
				return fmt.Errorf("node %d still holds the retained Will %v after it was published with a 2s expiry",
					i+1, time.Since(published).Round(time.Second))
			}
		}
		return nil
	})
}

// willConnect connects id (MQTT 5, clean start, a session of 60s) with a QoS 1 Will on
// topic with payload and the Will properties wp, retained if asked, and returns the
// connection and the CONNACK's reason code. The connection is closed when the test ends.
func willConnect(t *testing.T, addr, id, topic string, retain bool, payload []byte, wp packets.Properties) (net.Conn, byte) {
	t.Helper()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Mods:       packets.Mods{AllowResponseInfo: true}, // else mochi's encoder leaves out the response topic
		Properties: packets.Properties{SessionExpiryInterval: 60, SessionExpiryIntervalFlag: true},
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: id,
			WillFlag: true, WillQos: 1, WillRetain: retain, WillTopic: topic, WillPayload: payload, WillProperties: wp,
		},
	}
	var b bytes.Buffer
	if err := pk.ConnectEncode(&b); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatalf("%s: no CONNACK: %v", id, err)
	}
	body := make([]byte, hdr[1]) // a CONNACK this small has a one-byte length
	if _, err := io.ReadFull(c, body); err != nil || hdr[0] != 0x20 || len(body) < 2 {
		t.Fatalf("%s: want CONNACK, got %x %x (%v)", id, hdr, body, err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, body[1]
}

func ptr[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
