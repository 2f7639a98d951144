package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/node"
)

// resendOrderNode is a node with an open ACL and a publisher on it.
func resendOrderNode(t *testing.T, id string) (*node.Node, *testenv.MQTTClient) {
	t.Helper()
	cfg := testConfig(t, id)
	cfg.Auth = openACL(t)
	n := startNode(t, cfg, testenv.OpenMemCoord(t, memcoord.NewCluster()), testenv.EmbeddedStore(t))
	pub := testenv.ConnectMQTT(t, n.Member().MQTTAddr, id+"-pub", testenv.MQTTOptions{CleanStart: true})
	return n, pub
}

// publishNumbered publishes m<from> to m<to-1> (two digits) to topic at QoS 1, in order.
func publishNumbered(t *testing.T, pub *testenv.MQTTClient, topic string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := pub.Publish(topic, fmt.Appendf(nil, "m%02d", i), 1); err != nil {
			t.Fatal(err)
		}
	}
}

// receiveInOrder reads count messages m00, m01, ... and fails at the first out of order.
func receiveInOrder(t *testing.T, c *testenv.MQTTClient, count int, what string) {
	t.Helper()
	for i := range count {
		m, err := c.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("%s: message %d of %d: %v", what, i+1, count, err)
		}
		if want := fmt.Sprintf("m%02d", i); string(m.Payload) != want {
			t.Fatalf("%s: message %d is %q, want %q: not in the order published [MQTT-4.6.0-1]", what, i+1, m.Payload, want)
		}
	}
}

// TestOfflineSessionResendsInOrder: messages published in a burst (most in the same
// second) to a client's offline session reach it in the order they were published when it
// comes back. mochi resent them sorted by their creation second only, with an unstable sort
// over a map: the messages of one second came back in any order.
func TestOfflineSessionResendsInOrder(t *testing.T) {
	t.Parallel()
	n, pub := resendOrderNode(t, "ro-1")
	const count = 40
	sub := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "ro-sub", testenv.MQTTOptions{SessionExpiry: 600})
	if err := sub.Subscribe("t/ro", 1); err != nil {
		t.Fatal(err)
	}
	sub.Close()
	publishNumbered(t, pub, "t/ro", 0, count)
	back := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "ro-sub", testenv.MQTTOptions{SessionExpiry: 600})
	if !back.Connack.SessionPresent {
		t.Fatal("the session was not resumed")
	}
	receiveInOrder(t, back, count, "resumed after a disconnect")
}

// TestTakenOverSessionResendsInOrder: a connection that received messages and acknowledged
// none is taken over by a new connection of its client on the same node (the old one still
// open, as a half-open socket leaves it): the new one gets them again in their order.
func TestTakenOverSessionResendsInOrder(t *testing.T) {
	t.Parallel()
	n, pub := resendOrderNode(t, "ro-2")
	const count = 40
	old := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "ro-sub2", testenv.MQTTOptions{SessionExpiry: 600, ManualAck: true})
	if err := old.Subscribe("t/ro2", 1); err != nil {
		t.Fatal(err)
	}
	publishNumbered(t, pub, "t/ro2", 0, count)
	receiveInOrder(t, old, count, "first delivery") // and never acknowledged
	back := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "ro-sub2", testenv.MQTTOptions{SessionExpiry: 600})
	if !back.Connack.SessionPresent {
		t.Fatal("the session was not resumed")
	}
	receiveInOrder(t, back, count, "resent after the takeover")
}

// TestResendOrderHoldsAcrossResumes: a session resumed, partly acknowledged and dropped
// again, then sent more in a later second, is resent the rest and the new ones in the order
// published on its next resume: the first resume leaves the messages' creation times as
// they were, which the next one orders by. (Within the second of a resume the order of
// the ones kept before it and those queued after it is not known: see resend.go.)
func TestResendOrderHoldsAcrossResumes(t *testing.T) {
	t.Parallel()
	n, pub := resendOrderNode(t, "ro-3")
	const id, topic = "ro-sub3", "t/ro3"
	sub := testenv.ConnectMQTT(t, n.Member().MQTTAddr, id, testenv.MQTTOptions{SessionExpiry: 600})
	if err := sub.Subscribe(topic, 1); err != nil {
		t.Fatal(err)
	}
	sub.Close()
	publishNumbered(t, pub, topic, 0, 20)
	first := testenv.ConnectMQTT(t, n.Member().MQTTAddr, id, testenv.MQTTOptions{SessionExpiry: 600, ManualAck: true})
	for i := range 20 {
		m, err := first.Next(10 * time.Second)
		if err != nil || string(m.Payload) != fmt.Sprintf("m%02d", i) {
			t.Fatalf("first resume: message %d is %q, %v", i+1, m.Payload, err)
		}
		if i < 5 {
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	testenv.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		if k := n.InflightForTest(id); k != 15 {
			return fmt.Errorf("%d unacknowledged, want 15", k)
		}
		return nil
	})
	first.Drop()
	testenv.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		if k := n.ConnectedForTest(); k != 1 {
			return fmt.Errorf("%d connections, want the publisher's only", k)
		}
		return nil
	})
	// The creation second the messages are ordered by: the new ones in the next.
	for sec := time.Now().Unix(); time.Now().Unix() == sec; {
		time.Sleep(10 * time.Millisecond)
	}
	publishNumbered(t, pub, topic, 20, 30)
	second := testenv.ConnectMQTT(t, n.Member().MQTTAddr, id, testenv.MQTTOptions{SessionExpiry: 600})
	for i := 5; i < 30; i++ {
		m, err := second.Next(10 * time.Second)
		if want := fmt.Sprintf("m%02d", i); err != nil || string(m.Payload) != want {
			t.Fatalf("second resume: got %q, %v; want %q: not in the order published [MQTT-4.6.0-1]", m.Payload, err, want)
		}
	}
}
