package node

import (
	"bufio"
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestDisconnectCannotExtendTheSessionPastTheCap: an MQTT 5 client connects with a short
// session expiry and leaves with a DISCONNECT asking for 0xFFFFFFFF (never expire). mochi
// caps the CONNECT's interval but takes the DISCONNECT's as it comes; the node must cap it
// too, or the session — and every message kept for it — stays until the node restarts.
func TestDisconnectCannotExtendTheSessionPastTheCap(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	cfg := faultConfig(t, "sx-1")
	cfg.Limits.MaxSessionExpiry = 60
	n := startFaultNode(t, cfg, env.coord(t), env.store(t))

	conn, err := net.DialTimeout("tcp", n.Member().MQTTAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	write := func(pk packets.Packet, encode func(*packets.Packet, *bytes.Buffer) error) {
		t.Helper()
		var b bytes.Buffer
		if err := encode(&pk, &b); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(b.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	write(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true,
			Keepalive: 30, ClientIdentifier: "stays"},
		Properties: packets.Properties{SessionExpiryInterval: 30, SessionExpiryIntervalFlag: true},
	}, (*packets.Packet).ConnectEncode)
	r := bufio.NewReader(conn)
	if h, err := r.ReadByte(); err != nil || h>>4 != packets.Connack {
		t.Fatalf("first byte %#x, %v: want a CONNACK", h, err)
	}
	faultWaitFor(t, 5*time.Second, "client connected", func() bool {
		cs := n.clients.get("stays")
		return cs != nil && cs.connected.Load()
	})
	write(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Disconnect},
		ProtocolVersion: 5,
		ReasonCode:      packets.CodeDisconnect.Code,
		Properties:      packets.Properties{SessionExpiryInterval: 0xFFFFFFFF, SessionExpiryIntervalFlag: true},
	}, (*packets.Packet).DisconnectEncode)

	var got uint32
	faultWaitFor(t, 5*time.Second, "the session kept after the DISCONNECT", func() bool {
		cl, ok := n.mqtt.Clients.Get("stays")
		if !ok || !cl.Closed() {
			return false
		}
		got = cl.Properties.Props.SessionExpiryInterval
		return true
	})
	if got > cfg.Limits.MaxSessionExpiry {
		t.Fatalf("the session kept after the DISCONNECT expires after %ds, above the cap of %ds", got, cfg.Limits.MaxSessionExpiry)
	}
}

// TestEndedSessionKeepsNoIdentity: a session the node ends (taken over by another node,
// its access revoked) may outlive its connection in mochi; the node must forget who it
// authenticated as, so that mochi's read check refuses and nothing is kept for a client
// that is elsewhere now.
func TestEndedSessionKeepsNoIdentity(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	n := startFaultNode(t, faultConfig(t, "sx-2"), env.coord(t), env.store(t))
	c := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "moved", testenv.MQTTOptions{CleanStart: true, SessionExpiry: 600})
	var cs *clientState
	faultWaitFor(t, 5*time.Second, "client connected", func() bool {
		cs = n.clients.get("moved")
		return cs != nil && cs.connected.Load()
	})
	if n.sessions.get(cs.cl) == nil {
		t.Fatal("the connected session has no identity to begin with: the test tests nothing")
	}
	n.revokeState(cs, "test")
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the taken-over session is still connected")
	}
	if id := n.sessions.get(cs.cl); id != nil {
		t.Fatalf("the ended session still holds identity %q: mochi keeps messages for it", id.Username)
	}
	if (&hook{n: n}).OnACLCheck(cs.cl, "inbox/moved", false) {
		t.Fatal("mochi's read check still lets the ended session keep messages")
	}
}
