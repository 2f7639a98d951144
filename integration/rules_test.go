package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mqttpackets "github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// The MQTT rules a broker must keep, checked on a real node process with real clients
// (paho.golang for MQTT 5, mosquitto_sub/mosquitto_pub for 3.1.1 and MQTT 5, MQTT.js).
// The user "rules" may connect as rules-* and read and write every topic.

const rulesPassword = "rules-password-1"

// rulesNode starts a node whose credentials file holds the user "rules".
func (c *cluster) rulesNode(t *testing.T, id string, extra ...string) *nodeProc {
	t.Helper()
	file := filepath.Join(t.TempDir(), "users.json")
	setPassword(t, file, "rules", rulesPassword, "--clients", "rules-*")
	grantRule(t, file, "rules", "#", "readwrite")
	grantRule(t, file, "rules", "$rules/#", "readwrite")
	return c.startNode(id, append([]string{"--auth-file", file}, extra...)...)
}

func rulesClient(t *testing.T, addr, id string, o testenv.MQTTOptions) *testenv.MQTTClient {
	t.Helper()
	o.Username, o.Password = "rules", []byte(rulesPassword)
	return testenv.ConnectMQTT(t, addr, id, o)
}

// nextOn waits for the next message on topic, failing on any other topic but those in skip.
func nextOn(t *testing.T, cl *testenv.MQTTClient, topic string, within time.Duration) testenv.Msg {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		m, err := cl.Next(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for a message on %s: %v", topic, err)
		}
		if m.Topic == topic {
			return m
		}
		t.Fatalf("%s received %q on %s while waiting for %s", cl.ID, m.Payload, m.Topic, topic)
	}
}

// [MQTT-4.7.2-1]: a filter beginning with a wildcard never matches a topic beginning with $,
// for messages published after the SUBSCRIBE and for retained ones. A retained message is
// left on $rules/retained (mosquitto_pub -r); then a subscriber to #, +/status, +/retained
// and +/+ must get, of everything that follows, only what one publisher sends to
// plain/status after $rules/status (messages from one publisher arrive in order, and a
// retained message right after the SUBACK, so either $ message would have come first),
// while subscribers to the $ topics by name get them.
func TestRuleDollarTopicsNotMatchedByWildcards(t *testing.T) {
	mpub := testenv.Tool(t, "mosquitto_pub")
	c := newCluster(t)
	n := c.rulesNode(t, "rules-dollar")
	host, port := splitHostPort(t, n.member.MQTTAddr)
	if out, err := exec.Command(mpub, "-h", host, "-p", port, "-V", "5", "-q", "1", "-i", "rules-ret", "-u", "rules", "-P", rulesPassword,
		"-r", "-t", "$rules/retained", "-m", "kept").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub -r: %v\n%s", err, out)
	}
	named := rulesClient(t, n.member.MQTTAddr, "rules-named", testenv.MQTTOptions{CleanStart: true})
	if err := named.Subscribe("$rules/retained", 1); err != nil {
		t.Fatal(err)
	}
	if m := nextOn(t, named, "$rules/retained", 5*time.Second); string(m.Payload) != "kept" {
		t.Fatalf("retained message %q, want kept", m.Payload)
	}
	if err := named.Subscribe("$rules/status", 1); err != nil {
		t.Fatal(err)
	}
	wild := rulesClient(t, n.member.MQTTAddr, "rules-wild", testenv.MQTTOptions{CleanStart: true})
	for _, f := range []string{"#", "+/status", "+/retained", "+/+"} {
		if err := wild.Subscribe(f, 1); err != nil {
			t.Fatal(err)
		}
	}
	pub := rulesClient(t, n.member.MQTTAddr, "rules-pub", testenv.MQTTOptions{CleanStart: true})
	for _, topic := range []string{"$rules/status", "plain/status"} {
		if err := pub.Publish(topic, []byte("to "+topic), 1); err != nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
	}
	nextOn(t, named, "$rules/status", 5*time.Second)
	m, err := wild.Next(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Topic != "plain/status" {
		t.Fatalf("a subscriber to #, +/status, +/retained and +/+ received %q on %s [MQTT-4.7.2-1]", m.Payload, m.Topic)
	}
}

// [MQTT-3.1.2-4/5] for MQTT 5: a client with a session expiry gets the QoS 1 and 2 messages
// published to its subscription while it was offline, when it resumes the session, in the
// order they were published [MQTT-4.6.0-1] (mochi v2.7.9 alone resent those of one second
// in any order: it sorts by creation second over a map; see docs/OPERATIONS.md).
func TestRuleOfflineMessagesMQTT5(t *testing.T) {
	c := newCluster(t)
	n := c.rulesNode(t, "rules-off5")
	const topic = "rules/offline/5"
	sub := rulesClient(t, n.member.MQTTAddr, "rules-sub5", testenv.MQTTOptions{CleanStart: true, SessionExpiry: 300})
	if err := sub.Subscribe(topic, 2); err != nil {
		t.Fatal(err)
	}
	sub.Close()
	waitClients(t, n, 0)
	pub := rulesClient(t, n.member.MQTTAddr, "rules-pub5", testenv.MQTTOptions{CleanStart: true})
	want := publishOffline(t, pub, topic)
	again := rulesClient(t, n.member.MQTTAddr, "rules-sub5", testenv.MQTTOptions{CleanStart: false, SessionExpiry: 300})
	if again.Connack == nil || !again.Connack.SessionPresent {
		t.Fatalf("session not present on reconnect: %+v", again.Connack)
	}
	var got []string
	for range want {
		got = append(got, string(nextOn(t, again, topic, 5*time.Second).Payload))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("received %v while offline, want %v in that order", got, want)
	}
}

// publishOffline publishes 20 messages to topic, 10 at QoS 1 and then 10 at QoS 2, and
// returns their payloads in order. (The QoS 2 ones last: libmosquitto hands a QoS 2
// message to mosquitto_sub only at its PUBREL, a round trip after the QoS 1 ones that
// follow it, so interleaved they would print out of order however they were sent.)
func publishOffline(t *testing.T, pub *testenv.MQTTClient, topic string) []string {
	t.Helper()
	var sent []string
	for i := range 20 {
		p := fmt.Sprintf("m%02d", i)
		if err := pub.Publish(topic, []byte(p), byte(1+i/10)); err != nil {
			t.Fatalf("publish %s: %v", p, err)
		}
		sent = append(sent, p)
	}
	return sent
}

// [MQTT-3.1.2-4/5] for MQTT 3.1.1: mosquitto_sub with clean session 0 subscribes and
// leaves; QoS 1 and 2 messages published meanwhile arrive when it connects again, in the
// order they were published [MQTT-4.6.0-1].
func TestRuleOfflineMessagesMQTT311(t *testing.T) {
	sub := testenv.Tool(t, "mosquitto_sub")
	c := newCluster(t)
	n := c.rulesNode(t, "rules-off3")
	const topic = "rules/offline/311"
	host, port := splitHostPort(t, n.member.MQTTAddr)
	args := []string{"-h", host, "-p", port, "-V", "mqttv311", "-c", "-i", "rules-sub3", "-u", "rules", "-P", rulesPassword,
		"-q", "2", "-t", topic}
	if out, err := exec.Command(sub, append(args, "-E")...).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_sub -E: %v\n%s", err, out)
	}
	waitClients(t, n, 0)
	pub := rulesClient(t, n.member.MQTTAddr, "rules-pub3", testenv.MQTTOptions{CleanStart: true})
	want := publishOffline(t, pub, topic)
	out, err := exec.Command(sub, append(args, "-C", fmt.Sprint(len(want)), "-W", "10")...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_sub (session resumed): %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, want) {
		t.Fatalf("a 3.1.1 clean-session-0 client received %q after reconnecting, want %v in that order", out, want)
	}
}

// [MQTT-3.3.2-5/6]: a message whose expiry interval passed while its subscriber was offline
// is not delivered; one still alive is, with the interval less the time it waited; an
// online subscriber gets the interval too.
func TestRuleMessageExpiry(t *testing.T) {
	c := newCluster(t)
	n := c.rulesNode(t, "rules-exp")
	const topic = "rules/expiry"
	live := rulesClient(t, n.member.MQTTAddr, "rules-live", testenv.MQTTOptions{CleanStart: true})
	if err := live.Subscribe(topic, 1); err != nil {
		t.Fatal(err)
	}
	sub := rulesClient(t, n.member.MQTTAddr, "rules-off", testenv.MQTTOptions{CleanStart: true, SessionExpiry: 300})
	if err := sub.Subscribe(topic, 1); err != nil {
		t.Fatal(err)
	}
	sub.Close()
	waitClients(t, n, 1)
	pub := rulesClient(t, n.member.MQTTAddr, "rules-pubx", testenv.MQTTOptions{CleanStart: true})
	if _, err := pub.PublishProps(topic, []byte("short"), 1, nil, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.PublishProps(topic, []byte("long"), 1, nil, 60); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"short", "long"} {
		m := nextOn(t, live, topic, 5*time.Second)
		if string(m.Payload) != want || m.Expiry == nil || *m.Expiry == 0 {
			t.Fatalf("online subscriber: %q with expiry %v, want %q with its expiry interval", m.Payload, m.Expiry, want)
		}
	}
	live.Close()
	waitClients(t, n, 1)
	// The time passing is what is tested: the short message's second must run out, and the
	// long one must show it waited. mochi stamps expiries in whole seconds and sweeps expired
	// messages from a session once a second, so an expired message can linger up to about
	// two seconds past its interval: 3.5s covers both.
	published := time.Now()
	time.Sleep(3500 * time.Millisecond)
	// The marker waits in the session too, three seconds younger than the others, so that
	// it is resent after them (mochi orders a session's messages by their second). Sent
	// after the reconnect, it could come first: mochi adds the resumed client to the live
	// ones before it resends what the session kept (see docs/OPERATIONS.md).
	if err := pub.Publish(topic, []byte("marker"), 1); err != nil {
		t.Fatal(err)
	}
	// mochi acknowledges a publish before it routes it: wait until the session holds the
	// marker beside the long one (the live subscriber has gone, so they are all it holds).
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		v, err := metric(n.member.AdminAddr, "switchboard_node_mqtt_inflight")
		if err == nil && v < 2 {
			err = fmt.Errorf("%v messages held, want the long one and the marker", v)
		}
		return err
	})
	again := rulesClient(t, n.member.MQTTAddr, "rules-off", testenv.MQTTOptions{CleanStart: false, SessionExpiry: 300})
	m := nextOn(t, again, topic, 5*time.Second)
	if string(m.Payload) != "long" {
		t.Fatalf("after %v offline the first message was %q, want long (short expired after 1s) [MQTT-3.3.2-5]", time.Since(published).Round(time.Millisecond), m.Payload)
	}
	if m.Expiry == nil || *m.Expiry > 57 || *m.Expiry == 0 {
		t.Fatalf("the long message came with expiry %v after waiting %v, want the remaining interval (at most 57s) [MQTT-3.3.2-6]", m.Expiry, time.Since(published).Round(time.Second))
	}
	if m := nextOn(t, again, topic, 5*time.Second); string(m.Payload) != "marker" {
		t.Fatalf("then %q, want the marker", m.Payload)
	}
}

// [MQTT-3.3.2-17/18]: user properties reach the subscriber unchanged and in order, repeated
// keys included.
func TestRuleUserPropertiesInOrder(t *testing.T) {
	c := newCluster(t)
	n := c.rulesNode(t, "rules-user")
	const topic = "rules/user"
	sub := rulesClient(t, n.member.MQTTAddr, "rules-usub", testenv.MQTTOptions{CleanStart: true})
	if err := sub.Subscribe(topic, 1); err != nil {
		t.Fatal(err)
	}
	pub := rulesClient(t, n.member.MQTTAddr, "rules-upub", testenv.MQTTOptions{CleanStart: true})
	props := [][2]string{{"z", "last-first"}, {"a", "1"}, {"a", "2"}, {"k", ""}, {"é", "ünïcode"}}
	for _, qos := range []byte{0, 1} {
		rc, err := pub.PublishProps(topic, []byte("props"), qos, props, 0)
		if err != nil || rc != 0 {
			t.Fatalf("publish QoS %d: reason %#x, %v", qos, rc, err)
		}
		m := nextOn(t, sub, topic, 5*time.Second)
		if !slices.Equal(m.UserList, props) {
			t.Fatalf("QoS %d: user properties %q, want %q", qos, m.UserList, props)
		}
	}
}

// waitClients waits until the node counts want connected clients, so a publish that
// follows a disconnect finds the client offline.
func waitClients(t *testing.T, n *nodeProc, want int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		v, err := metric(n.member.AdminAddr, "switchboard_node_clients_connected")
		if err != nil {
			return err
		}
		if int(v) != want {
			return fmt.Errorf("%v clients connected, want %d", v, want)
		}
		return nil
	})
}

func splitHostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		t.Fatalf("address %q", addr)
	}
	return host, port
}

// Retained-message handling options [MQTT-3.3.1-9..13, MQTT-3.8.3-4]: with retain handling
// 0 a subscription gets the retained message; with 1 only a new subscription does, not one
// that exists already; with 2 none does. Retain as published keeps the RETAIN flag of a
// message forwarded live; without it the flag is cleared. A message that must not come is
// shown absent by order: a later, non-retained marker on the same subscription must be the
// first thing the client gets (a retained message is sent right after the SUBACK).
func TestRuleRetainHandling(t *testing.T) {
	mpub := testenv.Tool(t, "mosquitto_pub")
	c := newCluster(t)
	n := c.rulesNode(t, "rules-retain")
	host, port := splitHostPort(t, n.member.MQTTAddr)
	pub := func(topic, payload string, retain bool) {
		t.Helper()
		args := []string{"-h", host, "-p", port, "-V", "5", "-q", "1", "-i", "rules-pub", "-u", "rules", "-P", rulesPassword,
			"-t", topic, "-m", payload}
		if retain {
			args = append(args, "-r")
		}
		if out, err := exec.Command(mpub, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub %v: %v\n%s", args, err, out)
		}
	}
	sub := func(cl *testenv.MQTTClient, o paho.SubscribeOptions) {
		t.Helper()
		o.QoS = 1
		if err := cl.SubscribeWith(o); err != nil {
			t.Fatal(err)
		}
	}
	first := func(cl *testenv.MQTTClient, wantTopic, wantPayload string, wantRetain bool) {
		t.Helper()
		m, err := cl.Next(5 * time.Second)
		if err != nil {
			t.Fatalf("%s: %v", cl.ID, err)
		}
		if m.Topic != wantTopic || string(m.Payload) != wantPayload || m.Retain != wantRetain {
			t.Fatalf("%s got %s %q (retain %v), want %s %q (retain %v)", cl.ID, m.Topic, m.Payload, m.Retain,
				wantTopic, wantPayload, wantRetain)
		}
	}
	pub("ret/a", "kept", true)
	opts := testenv.MQTTOptions{CleanStart: true}

	rh0 := rulesClient(t, n.member.MQTTAddr, "rules-rh0", opts)
	sub(rh0, paho.SubscribeOptions{Topic: "ret/#", RetainHandling: 0})
	first(rh0, "ret/a", "kept", true)

	rh1 := rulesClient(t, n.member.MQTTAddr, "rules-rh1", opts)
	sub(rh1, paho.SubscribeOptions{Topic: "ret/#", RetainHandling: 1})
	first(rh1, "ret/a", "kept", true) // a new subscription
	sub(rh1, paho.SubscribeOptions{Topic: "ret/#", RetainHandling: 1})
	pub("ret/m1", "marker-1", false)
	first(rh1, "ret/m1", "marker-1", false) // the existing one: no retained message again

	rh2 := rulesClient(t, n.member.MQTTAddr, "rules-rh2", opts)
	sub(rh2, paho.SubscribeOptions{Topic: "ret/#", RetainHandling: 2})
	pub("ret/m2", "marker-2", false)
	first(rh2, "ret/m2", "marker-2", false)

	rap := rulesClient(t, n.member.MQTTAddr, "rules-rap", opts)
	sub(rap, paho.SubscribeOptions{Topic: "live/x", RetainAsPublished: true})
	plain := rulesClient(t, n.member.MQTTAddr, "rules-plain", opts)
	sub(plain, paho.SubscribeOptions{Topic: "live/x"})
	pub("live/x", "live", true)
	first(rap, "live/x", "live", true)
	first(plain, "live/x", "live", false)
}

// [MQTT-3.1.2-21/22] on a node with a server keep-alive of 2s (--max-keepalive 2s): an
// MQTT 5 client asking for a longer keep-alive (paho's test default, 30) or for none (a raw
// client's 0) is told 2 in CONNACK's Server Keep Alive and held to it. Measured three ways:
// the raw client, silent from its CONNACK on, is disconnected about 3s (1.5 x 2s) after
// the CONNACK arrived, not never; a paho client whose link goes silent (a blackholed
// proxy) is disconnected, its Will published, within about 3s of the silence, not 45s; and
// clients that were told, and ping at 2s (paho, mosquitto_sub -V 5 -k 60), stay connected
// past 3s. A 3.1.1 client cannot be told: mosquitto_sub -V mqttv311 asking for 60 is
// refused with "identifier rejected", as mosquitto's max_keepalive does.
func TestRuleServerKeepAlive(t *testing.T) {
	msub := testenv.Tool(t, "mosquitto_sub")
	c := newCluster(t)
	n := c.rulesNode(t, "rules-ka", "--max-keepalive", "2s")
	addr := n.member.MQTTAddr
	told := func(cl *testenv.MQTTClient) {
		t.Helper()
		if p := cl.Connack.Properties; p == nil || p.ServerKeepAlive == nil || *p.ServerKeepAlive != 2 {
			t.Errorf("%s asked for keep-alive 30: CONNACK properties %+v, want Server Keep Alive 2", cl.ID, p)
		}
	}
	host, port := splitHostPort(t, addr)
	mosq := func(args ...string) []string {
		return append([]string{"-h", host, "-p", port, "-u", "rules", "-P", rulesPassword}, args...)
	}

	// A 3.1.1 client asking for more than the server allows is refused.
	out, err := exec.Command(msub, mosq("-V", "mqttv311", "-k", "60", "-i", "rules-ka-m4", "-t", "rules/ka/m4", "-C", "1", "-W", "10")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "identifier rejected") {
		t.Errorf("mosquitto_sub -V mqttv311 -k 60: %v, %q; want refused, identifier rejected", err, out)
	}

	watch := rulesClient(t, addr, "rules-ka-watch", testenv.MQTTOptions{CleanStart: true}) // keep-alive 30
	told(watch)
	if err := watch.Subscribe("rules/ka/will", 1); err != nil {
		t.Fatal(err)
	}
	// mosquitto_sub asking for 60 pings at the 2s it is told, once it has subscribed: the
	// debug lines say when it sent what, in order (line-buffered: into a pipe its stdio
	// would hold them back).
	m5 := exec.Command(testenv.Tool(t, "stdbuf"), append([]string{"-oL", msub}, mosq("-V", "5", "-k", "60", "-d", "-i", "rules-ka-m5", "-t", "rules/ka/m5", "-C", "1", "-W", "30")...)...)
	m5out, err := m5.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	m5.Stderr = m5.Stdout
	if err := m5.Start(); err != nil {
		t.Fatal(err)
	}
	m5done := make(chan struct{}) // closed once it has exited, with m5err
	var m5err error
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(m5out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		m5err = m5.Wait()
		close(m5done)
	}()
	t.Cleanup(func() {
		_ = m5.Process.Kill()
		for range lines { // what the test did not read, so the reader can finish
		}
		<-m5done
	})
	var m5log []string
	await := func(what string) {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("mosquitto_sub -V 5 -k 60 ended before %q:\n%s", what, strings.Join(m5log, "\n"))
				}
				m5log = append(m5log, l)
				if strings.Contains(l, what) {
					return
				}
			case <-timeout:
				t.Fatalf("mosquitto_sub -V 5 -k 60: no %q within 15s:\n%s", what, strings.Join(m5log, "\n"))
			}
		}
	}
	await("received SUBACK")

	// The raw client asks for none and then says nothing.
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	body := append(str("MQTT"), 5, 0xC2, 0, 0, 0) // v5, username+password+clean start, keep-alive 0, no properties
	body = append(append(append(body, str("rules-ka-raw")...), str("rules")...), str(rulesPassword)...)
	if _, err := raw.Write(packet(0x10, body)); err != nil {
		t.Fatal(err)
	}
	cp, err := mqttpackets.ReadPacket(raw)
	connacked := time.Now()
	if err != nil {
		t.Fatalf("raw client: no CONNACK: %v", err)
	}
	ca, ok := cp.Content.(*mqttpackets.Connack)
	if !ok || ca.ReasonCode != 0 {
		t.Fatalf("raw client: %v, want CONNACK 0", cp)
	}
	if p := ca.Properties; p == nil || p.ServerKeepAlive == nil || *p.ServerKeepAlive != 2 {
		t.Errorf("raw client asked for keep-alive 0: CONNACK properties %+v, want Server Keep Alive 2", p)
	}
	_ = raw.SetReadDeadline(connacked.Add(15 * time.Second))
	_, err = io.Copy(io.Discard, raw)
	silent := time.Since(connacked)
	t.Logf("raw client, keep-alive 0, silent: disconnected %v after its CONNACK (%v)", silent, err)
	// mochi sets the deadline once the CONNACK is written: no earlier than 3s after it
	// arrived, less the write's own time; the upper bound allows for a busy machine.
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("raw client asked for keep-alive 0: still connected %v after its CONNACK, silent all along", silent)
	} else if silent < 2900*time.Millisecond || silent > 5*time.Second {
		t.Errorf("raw client disconnected %v after its CONNACK, silent; want about 3s (1.5 x 2s)", silent)
	}

	// A paho client whose link goes silent: the node hears nothing more and ends the
	// connection within 1.5 x 2s of its last packet, publishing its Will. (Errors rather
	// than failures up to here, so a run without the server keep-alive shows each.)
	proxy := testenv.StartProxy(t, addr)
	dev := rulesClient(t, proxy.Addr, "rules-ka-dev", testenv.MQTTOptions{CleanStart: true,
		Will: &paho.WillMessage{Topic: "rules/ka/will", Payload: []byte("gone"), QoS: 1}})
	told(dev)
	proxy.Blackhole()
	holed := time.Now()
	select {
	case m := <-watch.Messages():
		d := time.Since(holed)
		t.Logf("paho client, keep-alive 30, link silent: Will %v after the silence began", d)
		if m.Topic != "rules/ka/will" || d > 5*time.Second {
			t.Errorf("got %q on %s %v after a paho client's link went silent; want its Will within about 3s (1.5 x 2s)", m.Payload, m.Topic, d)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("a paho client's link has been silent for 15s and its Will has not come; want it within about 3s (1.5 x 2s)")
	}

	// By now the watcher and mosquitto_sub have been connected for longer than 3s: told
	// 2s, they ping at it and are still connected.
	select {
	case <-watch.Done():
		t.Fatal("the paho client told keep-alive 2 was disconnected")
	default:
	}
	await("sending PINGREQ")
	await("received PINGRESP")
	if err := watch.Publish("rules/ka/m5", []byte("still here"), 1); err != nil {
		t.Fatalf("the paho client told keep-alive 2: %v", err)
	}
	await("still here")
	<-m5done
	if m5err != nil {
		t.Fatalf("mosquitto_sub -V 5 -k 60: %v:\n%s", m5err, strings.Join(m5log, "\n"))
	}
	if all := strings.Join(m5log, "\n"); strings.Count(all, "received CONNACK") != 1 {
		t.Fatalf("mosquitto_sub -V 5 -k 60 connected more than once:\n%s", all)
	}
}
