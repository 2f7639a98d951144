package node_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/node"
)

// openACL is an authenticator admitting anonymous clients to read and write t/#.
func openACL(t *testing.T) *auth.Authenticator {
	t.Helper()
	a, _ := anonymousAuth(t, `{"acl": [{"topic": "t/#", "access": "readwrite"}]}`)
	return a
}

// anonymousAuth is an authenticator admitting anonymous clients, with the credentials
// file body (rules, users) it reads from the returned path; a test rewrites the file to
// change them.
func anonymousAuth(t *testing.T, body string) (*auth.Authenticator, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "acl.json")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{AllowAnonymous: true, File: file})
	if err != nil {
		t.Fatal(err)
	}
	return a, file
}

// Two nodes in one process (an in-memory coordinator, one embedded store): a publish on
// one reaches a plain subscriber and one member of a shared group on the other, and a
// retained message reaches a subscriber there after the SUBACK. It runs the cluster's
// goroutines under the race detector in the package's own tests.
func TestClusterPubSubInProcess(t *testing.T) {
	t.Parallel()
	cl := memcoord.NewCluster()
	st := testenv.EmbeddedStore(t)
	var ns []*node.Node
	for i := range 2 {
		cfg := testConfig(t, fmt.Sprintf("pc-%d", i+1))
		cfg.Auth = openACL(t)
		ns = append(ns, startNode(t, cfg, testenv.OpenMemCoord(t, cl), st))
	}
	sub := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "sub", testenv.MQTTOptions{CleanStart: true})
	if err := sub.Subscribe("t/#", 1); err != nil {
		t.Fatal(err)
	}
	member := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "member", testenv.MQTTOptions{CleanStart: true})
	if err := member.Subscribe("$share/g/t/+", 1); err != nil {
		t.Fatal(err)
	}
	pub := testenv.ConnectMQTT(t, ns[1].Member().MQTTAddr, "pub", testenv.MQTTOptions{CleanStart: true})
	const n = 50
	for i := range n {
		if err := pub.Publish("t/x", []byte(fmt.Sprint(i)), 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*testenv.MQTTClient{sub, member} {
		for i := range n {
			m, err := c.Next(10 * time.Second)
			if err != nil {
				t.Fatalf("%s: message %d: %v", c.ID, i, err)
			}
			if string(m.Payload) != fmt.Sprint(i) {
				t.Fatalf("%s: message %d is %q: lost or out of order", c.ID, i, m.Payload)
			}
		}
	}
	if err := pub.PublishRetained("t/kept", []byte("kept"), 1); err != nil {
		t.Fatal(err)
	}
	late := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "late", testenv.MQTTOptions{CleanStart: true})
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		// The retained copy reaches node 1 by the forward; until then a new subscriber
		// finds none.
		if err := late.Subscribe("t/kept", 1); err != nil {
			return err
		}
		m, err := late.Next(200 * time.Millisecond)
		if err != nil {
			return err
		}
		if string(m.Payload) != "kept" || !m.Retain {
			return fmt.Errorf("got %q retain=%v", m.Payload, m.Retain)
		}
		return nil
	})
}

// twoNodes starts two nodes on one in-memory coordinator and one store, whose anonymous
// clients may use t/#.
func twoNodes(t *testing.T, prefix string) []*node.Node {
	t.Helper()
	cl := memcoord.NewCluster()
	st := testenv.EmbeddedStore(t)
	var ns []*node.Node
	for i := range 2 {
		cfg := testConfig(t, fmt.Sprintf("%s-%d", prefix, i+1))
		cfg.Auth = openACL(t)
		ns = append(ns, startNode(t, cfg, testenv.OpenMemCoord(t, cl), st))
	}
	return ns
}

// A session resumed on its node while its old connection is still open keeps its routes:
// mochi hands the subscriptions to the new connection and then reports the old one's end
// as a session end, which must not withdraw them from the other nodes.
func TestResumedSessionKeepsItsRoutes(t *testing.T) {
	t.Parallel()
	ns := twoNodes(t, "rs")
	old := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "sub", testenv.MQTTOptions{CleanStart: true})
	if err := old.Subscribe("t/x", 1); err != nil {
		t.Fatal(err)
	}
	resumed := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "sub", testenv.MQTTOptions{CleanStart: false})
	<-old.Done()
	testenv.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if k := ns[0].ConnectedForTest(); k != 1 {
			return fmt.Errorf("%d connections, the old one's end not handled yet", k)
		}
		return nil
	})
	pub := testenv.ConnectMQTT(t, ns[1].Member().MQTTAddr, "pub", testenv.MQTTOptions{CleanStart: true})
	if err := pub.Publish("t/x", []byte("cross-node"), 1); err != nil {
		t.Fatal(err)
	}
	if m, err := resumed.Next(5 * time.Second); err != nil || string(m.Payload) != "cross-node" {
		t.Fatalf("the resumed session got %q, %v: its routes went with the old connection", m.Payload, err)
	}
}

// A link closed by the member watch (its node registered again) fails what it holds, and a
// shared-group message among that is sent again on another link: the member watch must not
// hold the cluster's lock meanwhile.
func TestReconcileClosesLinksOutsideTheLock(t *testing.T) {
	t.Parallel()
	ns := twoNodes(t, "rc")
	for i, n := range ns {
		m := testenv.ConnectMQTT(t, n.Member().MQTTAddr, fmt.Sprint("member", i), testenv.MQTTOptions{CleanStart: true})
		if err := m.Subscribe("$share/g/t/+", 1); err != nil {
			t.Fatal(err)
		}
	}
	done := ns[1].ReconcileWithQueuedShareForTest("rc-1", "t/x", "$share/g/t/+")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("reconcile did not return: closing a link under the cluster's lock deadlocked")
	}
}

// A shared-group delivery for a group the table still counts here but mochi no longer has
// is refused, and reaches none of the node's plain subscribers.
func TestSharedDeliveryWithoutAMemberReachesNobody(t *testing.T) {
	t.Parallel()
	ns := twoNodes(t, "sd")
	plain := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "plain", testenv.MQTTOptions{CleanStart: true})
	if err := plain.Subscribe("t/#", 1); err != nil {
		t.Fatal(err)
	}
	if r := ns[0].DeliverSharedForTest("t/x", "$share/g/t/+", "for the group only"); r.Status == 1 {
		t.Fatalf("answered %v for a group with no member", r)
	}
	// A later plain publish is the next message the subscriber gets.
	pub := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "pub", testenv.MQTTOptions{CleanStart: true})
	if err := pub.Publish("t/y", []byte("plain"), 1); err != nil {
		t.Fatal(err)
	}
	if m, err := plain.Next(5 * time.Second); err != nil || string(m.Payload) != "plain" {
		t.Fatalf("the plain subscriber got %q (%v) first", m.Payload, err)
	}
}

// A session that ends (a clean disconnect, and a dropped connection whose session does not
// outlive it) takes its routes from the other nodes with it; one whose session outlives the
// connection keeps them, since mochi keeps its messages.
func TestEndedSessionWithdrawsItsRoutes(t *testing.T) {
	t.Parallel()
	ns := twoNodes(t, "es")
	routesOnPeer := func(want int) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
			if got := ns[1].PeerFiltersForTest("es-1"); got != want {
				return fmt.Errorf("node 2 holds %d of node 1's filters, want %d", got, want)
			}
			return nil
		})
	}
	clean := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "clean", testenv.MQTTOptions{CleanStart: true})
	if err := clean.Subscribe("t/clean", 1); err != nil {
		t.Fatal(err)
	}
	dropped := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "dropped", testenv.MQTTOptions{CleanStart: true})
	if err := dropped.Subscribe("t/dropped", 1); err != nil {
		t.Fatal(err)
	}
	kept := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "kept", testenv.MQTTOptions{CleanStart: true, SessionExpiry: 600})
	if err := kept.Subscribe("t/kept", 1); err != nil {
		t.Fatal(err)
	}
	routesOnPeer(3)
	clean.Close()
	dropped.Drop()
	kept.Drop()
	routesOnPeer(1)
}

// A peer whose link goes silent (frozen, or behind a dead route: the connection stays open
// and nothing comes back) holds one SUBACK or retained PUBACK for the route sync timeout,
// not every one until the link's idle timeout ends the connection; once it answers again,
// they wait for it again.
func TestSilentPeerHoldsOneSubackNotEvery(t *testing.T) {
	t.Parallel()
	cl := memcoord.NewCluster()
	st := testenv.EmbeddedStore(t)
	const syncTimeout = 2 * time.Second
	a := testConfig(t, "sp-1")
	a.Auth, a.RouteSyncTimeout = openACL(t), syncTimeout
	b := testConfig(t, "sp-2")
	b.Auth = openACL(t)
	b.InternalAddr = testenv.RefusedAddr(t)
	proxy := testenv.StartProxy(t, b.InternalAddr) // node 1 reaches node 2 only through it
	b.AdvertiseInternal = proxy.Addr
	ns := []*node.Node{startNode(t, a, testenv.OpenMemCoord(t, cl), st), startNode(t, b, testenv.OpenMemCoord(t, cl), st)}
	sub := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "sub", testenv.MQTTOptions{CleanStart: true})
	timed := func(what string, f func() error) time.Duration {
		t.Helper()
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return time.Since(start)
	}
	subscribe := func(filter string) time.Duration {
		t.Helper()
		return timed("subscribe "+filter, func() error { return sub.Subscribe(filter, 1) })
	}
	retain := func(topic string) time.Duration {
		t.Helper()
		return timed("retain "+topic, func() error { return sub.PublishRetained(topic, []byte("kept"), 1) })
	}
	filtersOnPeer := func(want int) {
		t.Helper()
		testenv.Eventually(t, 20*time.Second, 5*time.Millisecond, func() error {
			if got := ns[1].PeerFiltersForTest("sp-1"); got != want {
				return fmt.Errorf("node 2 holds %d of node 1's filters, want %d", got, want)
			}
			if ns[0].LaggingForTest("sp-2") {
				return errors.New("node 2's answer has not reached node 1 yet")
			}
			return nil
		})
	}
	subscribe("t/warm")
	filtersOnPeer(1) // the link was up and idle, or the SUBACK did not wait: either way it is up now

	proxy.Blackhole()
	if d := subscribe("t/first"); d < syncTimeout {
		t.Fatalf("the first SUBACK after the link went silent came after %v, before the route sync timeout (%v): the test did not silence the link", d, syncTimeout)
	}
	for i := range 3 {
		if d := subscribe(fmt.Sprintf("t/later-%d", i)); d >= syncTimeout/2 {
			t.Fatalf("SUBACK %d after the first that ran out came after %v: it waited again for the silent peer", i+1, d)
		}
	}
	if d := retain("t/kept-1"); d >= syncTimeout/2 {
		t.Fatalf("a retained PUBACK after a SUBACK's wait ran out came after %v: it waited again for the silent peer", d)
	}

	proxy.Restore() // closes the swallowed connection: node 1 dials again and pushes every filter
	filtersOnPeer(5)
	proxy.Blackhole()
	if d := retain("t/kept-2"); d < syncTimeout {
		t.Fatalf("a retained PUBACK after the peer answered again and went silent again came after %v: it no longer waited for that peer", d)
	}
	if d := subscribe("t/again"); d >= syncTimeout/2 {
		t.Fatalf("a SUBACK after a retained publish's wait ran out came after %v: it waited again for the silent peer", d)
	}
}

// TestForwardedMessagesExpire: a message with a message expiry interval published on one
// node expires on the other too, in an offline session there and as a retained message
// there. The forwarded copies were MQTT packets of version 0, which mochi never expires: a
// trial's 2-second messages were still delivered minutes later.
func TestForwardedMessagesExpire(t *testing.T) {
	t.Parallel()
	ns := twoNodes(t, "fx")
	keeper := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "keeper", testenv.MQTTOptions{SessionExpiry: 600})
	if err := keeper.Subscribe("t/exp", 1); err != nil {
		t.Fatal(err)
	}
	keeper.Close()
	testenv.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if ns[1].PeerFiltersForTest(ns[0].Member().ID) == 0 {
			return errors.New("the offline session's filter has not reached the publisher's node")
		}
		return nil
	})
	pub := testenv.ConnectMQTT(t, ns[1].Member().MQTTAddr, "pub-exp", testenv.MQTTOptions{CleanStart: true})
	// 4 seconds: long enough to see both arrive on the other node first, even on a busy
	// machine under the race detector.
	if code, err := pub.PublishProps("t/exp", []byte("short-lived"), 1, nil, 4); err != nil || code != 0 {
		t.Fatalf("publish: %#x %v", code, err)
	}
	if err := pub.PublishRetained("t/exp-kept", []byte("kept"), 1); err != nil {
		t.Fatal(err)
	}
	four := uint32(4)
	if code, err := pub.PublishPacket(&paho.Publish{Topic: "t/exp-ret", Payload: []byte("short-lived retained"), QoS: 1, Retain: true,
		Properties: &paho.PublishProperties{MessageExpiry: &four}}); err != nil || code != 0 {
		t.Fatalf("retained publish: %#x %v", code, err)
	}
	testenv.Eventually(t, 3*time.Second, 5*time.Millisecond, func() error {
		if ns[0].InflightForTest("keeper") != 1 || !ns[0].RetainedForTest("t/exp-ret") {
			return errors.New("the forwarded messages have not reached the other node")
		}
		return nil
	})
	// mochi sweeps expired messages once a second, on whole seconds.
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		if k := ns[0].InflightForTest("keeper"); k != 0 {
			return fmt.Errorf("the offline session still holds %d forwarded message(s) past their expiry", k)
		}
		if ns[0].RetainedForTest("t/exp-ret") {
			return errors.New("the forwarded retained message is still held past its expiry")
		}
		return nil
	})
	if !ns[0].RetainedForTest("t/exp-kept") {
		t.Fatal("a forwarded retained message without an expiry is gone")
	}
}

// TestTakeoverElsewhereDiscardsTheSession: a client with a persistent session on one node
// that connects to another is taken over there; the first node discards its session, so
// it keeps no subscription and queues nothing more, and a later CONNECT there finds no
// session. It used to keep it: a trial's client came back to find the messages published
// while it was on the other node, after a Clean Start there.
func TestTakeoverElsewhereDiscardsTheSession(t *testing.T) {
	t.Parallel()
	ns := twoNodes(t, "tk")
	first := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "mover", testenv.MQTTOptions{SessionExpiry: 600})
	if err := first.Subscribe("t/mv", 1); err != nil {
		t.Fatal(err)
	}
	if !ns[0].HasSessionForTest("mover") {
		t.Fatal("no session on the first node")
	}
	second := testenv.ConnectMQTT(t, ns[1].Member().MQTTAddr, "mover", testenv.MQTTOptions{CleanStart: true})
	select {
	case <-first.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the first connection was not taken over")
	}
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if ns[0].HasSessionForTest("mover") {
			return errors.New("the first node still holds the taken-over session")
		}
		return nil
	})
	pub := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "pub-mv", testenv.MQTTOptions{CleanStart: true})
	if err := pub.Publish("t/mv", []byte("after the takeover"), 1); err != nil {
		t.Fatal(err)
	}
	second.Close()
	if ns[0].InflightForTest("mover") != 0 || ns[0].HasSessionForTest("mover") {
		t.Fatal("the first node queued for the discarded session")
	}
}
