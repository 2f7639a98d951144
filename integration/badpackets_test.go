package integration

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// connectPacket builds a CONNECT with clean start for protocol version 4 (3.1.1) or 5.
func connectPacket(version byte, id string) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', version, 0x02, 0, 30}
	if version == 5 {
		body = append(body, 0) // no properties
	}
	body = append(body, 0, byte(len(id)))
	body = append(body, id...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// TestKnownBadPacketsAgainstARealNode replays packets that have crashed or confused MQTT
// brokers: each gets the right reason code or has its connection closed, other clients keep
// being served, and the node's goroutine count returns to its baseline.
func TestKnownBadPacketsAgainstARealNode(t *testing.T) {
	c := newCluster(t)
	n := c.startNode("bad-n")
	addr := n.member.MQTTAddr
	bystander := testenv.ConnectMQTT(t, addr, "bystander", testenv.MQTTOptions{CleanStart: true})
	if err := bystander.Subscribe("$switchboard/probe/bystander", 1); err != nil {
		t.Fatal(err)
	}
	baseline, err := metric(n.member.AdminAddr, "go_goroutines")
	if err != nil || baseline == 0 {
		t.Fatalf("go_goroutines: %v %v", baseline, err)
	}

	for _, tc := range []struct {
		name    string
		version byte   // 0: no CONNECT first
		packet  []byte // sent after the CONNECT (and its CONNACK)
		reason  byte   // MQTT 5 DISCONNECT reason expected before the close; 0: just closed
	}{
		{"zero-length topic, 3.1.1", 4, []byte{0x30, 3, 0, 0, 'x'}, 0},
		{"zero-length topic without alias, 5", 5, []byte{0x30, 4, 0, 0, 0, 'x'}, 0x82},
		{"truncated MQTT 5 SUBSCRIBE", 5, []byte{0x82, 6, 0, 1, 0, 0, 1, 'a'}, 0},
		{"PUBLISH before CONNECT", 0, []byte{0x30, 4, 0, 1, 'a', 'x'}, 0},
		{"5-byte remaining length", 5, []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, 0},
		{"topic alias 0", 5, []byte{0x30, 8, 0, 1, 'a', 3, 0x23, 0, 0, 'x'}, 0x94},
		{"topic alias above the maximum", 5, []byte{0x30, 8, 0, 1, 'a', 3, 0x23, 0, 100, 'x'}, 0x94},
		{"huge declared CONNECT length", 0, []byte{0x10, 0xFF, 0xFF, 0xFF, 0x7F}, 0},
		{"second CONNECT", 5, connectPacket(5, "again"), 0x82},
		{"reserved packet type 0", 5, []byte{0x00, 0}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if tc.version != 0 {
				if _, err := conn.Write(connectPacket(tc.version, "bad-client")); err != nil {
					t.Fatal(err)
				}
				ack := make([]byte, 2)
				if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 0x20 {
					t.Fatalf("CONNACK: %x %v", ack, err)
				}
				rest := make([]byte, ack[1])
				if _, err := io.ReadFull(conn, rest); err != nil || rest[1] != 0 {
					t.Fatalf("CONNACK refused: %x %v", rest, err)
				}
			}
			if _, err := conn.Write(tc.packet); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(conn) // until the node closes the connection
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("the node kept the connection open (got %x)", got)
				}
			}
			if tc.reason != 0 {
				if len(got) < 3 || got[0] != 0xE0 || got[2] != tc.reason {
					t.Fatalf("answer %x, want DISCONNECT with reason %#x", got, tc.reason)
				}
			}
		})
	}

	// Still serving: the bystander publishes and receives; a new client connects.
	if err := bystander.Publish("$switchboard/probe/bystander", []byte("ok"), 1); err != nil {
		t.Fatal(err)
	}
	if m, err := bystander.Next(5 * time.Second); err != nil || string(m.Payload) != "ok" {
		t.Fatalf("bystander after the bad packets: %+v %v", m, err)
	}
	testenv.ConnectMQTT(t, addr, "after-bad", testenv.MQTTOptions{CleanStart: true}).Close()
	testenv.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		g, err := metric(n.member.AdminAddr, "go_goroutines")
		if err != nil {
			return err
		}
		// The test's own probes of /metrics run on the node too: allow a couple.
		if g > baseline+2 {
			return fmt.Errorf("%v goroutines, baseline %v", g, baseline)
		}
		return nil
	})
}
