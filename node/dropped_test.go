package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestDroppedMessageGoesToMailbox: a QoS 1 message mochi drops for a subscriber whose
// outbound queue is full (its OnPublishDropped hook) is appended to that subscriber's
// mailbox and delivered once the client is ready; a dropped QoS 0 message is not kept.
//
// The hook is called directly: in mochi v2.7.9 a subscriber whose socket is stuck blocks
// its publishers on the client lock (NextPacketID) before its queue can fill, so the drop
// cannot be provoked reliably from outside; what is tested here is what the node does
// with it.
func TestDroppedMessageGoesToMailbox(t *testing.T) {
	t.Parallel()
	c, st := backendsFor(t)
	n := startNode(t, testConfig(t, "drop-1"), c, st)
	cl := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "slowpoke", testenv.MQTTOptions{CleanStart: true})
	for i := range 3 {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName: "feed/x", Payload: []byte(fmt.Sprint("dropped ", i))}
		if !n.DropForTest("slowpoke", pk) {
			t.Fatal("client not connected")
		}
	}
	n.DropForTest("slowpoke", packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 0},
		TopicName: "feed/x", Payload: []byte("qos 0: not kept")})
	testenv.Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		d, err := st.Depth(testenv.Context(t, time.Second), "slowpoke")
		if err != nil || d != 3 {
			return fmt.Errorf("mailbox depth %d %v, want 3", d, err)
		}
		return nil
	})
	if err := cl.Subscribe("inbox/slowpoke", 1); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m, err := cl.Next(5 * time.Second)
		if err != nil || m.Topic != "feed/x" || string(m.Payload) != fmt.Sprint("dropped ", i) {
			t.Fatalf("message %d: %+v %v", i, m, err)
		}
	}
}
