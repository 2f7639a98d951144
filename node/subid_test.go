package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestRetainedMessagesCarryTheSubscriptionIdentifier: the retained messages a new
// subscription gets carry the Subscription Identifier its SUBSCRIBE gave it [MQTT-3.3.4-3],
// as live publishes do, on the node the message was published on and on another one; a
// subscription without one gets none. mochi v2.7.9 sent retained messages without it, so a
// client that dispatches by identifier (paho.golang's router, say) could not place them.
func TestRetainedMessagesCarryTheSubscriptionIdentifier(t *testing.T) {
	t.Parallel()
	ns := twoNodes(t, "subid")
	pub := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "pub", testenv.MQTTOptions{CleanStart: true})
	if err := pub.PublishRetained("t/kept", []byte("kept"), 1); err != nil {
		t.Fatal(err)
	}
	for i, n := range ns {
		for _, id := range []int{7, 0} {
			c := testenv.ConnectMQTT(t, n.Member().MQTTAddr, fmt.Sprintf("sub-%d-%d", i, id), testenv.MQTTOptions{CleanStart: true})
			if err := c.SubscribeID(paho.SubscribeOptions{Topic: "t/#", QoS: 1}, id); err != nil {
				t.Fatal(err)
			}
			m, err := c.Next(5 * time.Second)
			if err != nil || m.Topic != "t/kept" || !m.Retain {
				t.Fatalf("node %d, identifier %d: got %s %q retain %v (%v), want the retained t/kept", i+1, id, m.Topic, m.Payload, m.Retain, err)
			}
			if got := subID(m); got != id {
				t.Errorf("node %d: the retained message came with subscription identifier %d, want %d", i+1, got, id)
			}
			if err := pub.Publish(fmt.Sprintf("t/live/%d", i), []byte("live"), 1); err != nil {
				t.Fatal(err)
			}
			if m, err = c.Next(5 * time.Second); err != nil || subID(m) != id {
				t.Errorf("node %d: the live publish came with subscription identifier %d (%v), want %d", i+1, subID(m), err, id)
			}
		}
	}
}

// subID is the message's Subscription Identifier, 0 if none.
func subID(m testenv.Msg) int {
	if m.Props == nil || m.Props.SubscriptionIdentifier == nil {
		return 0
	}
	return *m.Props.SubscriptionIdentifier
}
