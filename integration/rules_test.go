package integration

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
// published to its subscription while it was offline, when it resumes the session.
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
	for i, qos := range []byte{1, 2} {
		if err := pub.Publish(topic, []byte{'m', '1' + byte(i)}, qos); err != nil {
			t.Fatalf("publish QoS %d: %v", qos, err)
		}
	}
	again := rulesClient(t, n.member.MQTTAddr, "rules-sub5", testenv.MQTTOptions{CleanStart: false, SessionExpiry: 300})
	if again.Connack == nil || !again.Connack.SessionPresent {
		t.Fatalf("session not present on reconnect: %+v", again.Connack)
	}
	var got []string
	for range 2 {
		got = append(got, string(nextOn(t, again, topic, 5*time.Second).Payload))
	}
	// In either order: mochi v2.7.9 resends a session's messages sorted by their creation
	// second alone (sort.Slice over a map), so two published within one second can swap
	// ([MQTT-4.6.0-1]; see docs/OPERATIONS.md).
	slices.Sort(got)
	if !slices.Equal(got, []string{"m1", "m2"}) {
		t.Fatalf("received %v while offline, want m1 and m2", got)
	}
}

// [MQTT-3.1.2-4/5] for MQTT 3.1.1: mosquitto_sub with clean session 0 subscribes and
// leaves; QoS 1 and 2 messages published meanwhile arrive when it connects again.
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
	for i, qos := range []byte{1, 2} {
		if err := pub.Publish(topic, []byte{'m', '1' + byte(i)}, qos); err != nil {
			t.Fatalf("publish QoS %d: %v", qos, err)
		}
	}
	out, err := exec.Command(sub, append(args, "-C", "2", "-W", "10")...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_sub (session resumed): %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	slices.Sort(got) // in either order, as above
	if !slices.Equal(got, []string{"m1", "m2"}) {
		t.Fatalf("a 3.1.1 clean-session-0 client received %q after reconnecting, want m1 m2", out)
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
	// The time passing is what is tested: the short message's second must run out, and the
	// long one must show it waited. mochi stamps expiries in whole seconds and sweeps expired
	// messages from a session once a second, so an expired message can linger up to about
	// two seconds past its interval: 3.5s covers both.
	published := time.Now()
	time.Sleep(3500 * time.Millisecond)
	again := rulesClient(t, n.member.MQTTAddr, "rules-off", testenv.MQTTOptions{CleanStart: false, SessionExpiry: 300})
	if err := pub.Publish(topic, []byte("marker"), 1); err != nil {
		t.Fatal(err)
	}
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
