package node

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// kaConn is a raw MQTT connection that sends a CONNECT and then nothing at all, so the
// server hears nothing from it after the CONNECT: the silence keep-alive is for.
type kaConn struct {
	c       net.Conn
	r       *bufio.Reader
	connack packets.Packet
	sent    time.Time // when the CONNECT was written: the server's deadlines run from later
	at      time.Time // when the CONNACK arrived
}

// dialKeepAlive connects with the given protocol version (4: 3.1.1, 5) and keep-alive and
// reads the CONNACK.
func dialKeepAlive(t *testing.T, addr, id string, version byte, keepalive uint16) *kaConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: version,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true,
			Keepalive: keepalive, ClientIdentifier: id},
	}
	var b bytes.Buffer
	if err := pk.ConnectEncode(&b); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	k := &kaConn{c: c, r: bufio.NewReader(c), sent: sent}
	first, err := k.r.ReadByte()
	if err != nil {
		t.Fatalf("%s: no CONNACK: %v", id, err)
	}
	k.at = time.Now()
	n, _, err := packets.DecodeLength(k.r)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(k.r, body); err != nil {
		t.Fatal(err)
	}
	k.connack = packets.Packet{ProtocolVersion: version}
	if err := k.connack.FixedHeader.Decode(first); err != nil || k.connack.FixedHeader.Type != packets.Connack {
		t.Fatalf("%s: first packet %#x (%v), want CONNACK", id, first, err)
	}
	k.connack.FixedHeader.Remaining = n
	if err := k.connack.ConnackDecode(body); err != nil {
		t.Fatalf("%s: CONNACK %x: %v", id, body, err)
	}
	return k
}

// silence reads (and discards) until the server closes the connection, and returns when
// that was; it fails the test if the connection is still open within (after the CONNACK),
// which is well past what any keep-alive under test allows.
func (k *kaConn) silence(t *testing.T, within time.Duration) time.Time {
	t.Helper()
	_ = k.c.SetReadDeadline(k.at.Add(within))
	_, err := io.Copy(io.Discard, k.r)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("still connected %v after the CONNACK, silent all along", within)
	}
	return time.Now()
}

// serverKeepAlive is the CONNACK's Server Keep Alive, if it has one.
func (k *kaConn) serverKeepAlive() (uint16, bool) {
	return k.connack.Properties.ServerKeepAlive, k.connack.Properties.ServerKeepAliveFlag
}

// TestServerKeepAlive [MQTT-3.1.2-21/22]: with a server keep-alive of 2s, an MQTT 5 client
// asking for none (0) or a longer one (60) is told 2 in CONNACK's Server Keep Alive and,
// silent after its CONNACK, is disconnected about 3s (1.5 times 2s) later, not never or
// after 90s; one asking for less keeps its own, untold. An MQTT 3.1.1 client, which cannot
// be told, is refused with 0x02 when it asks for none or for more, and admitted otherwise.
func TestServerKeepAlive(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	cfg := faultConfig(t, "ka-1")
	cfg.Limits.MaxKeepAlive = 2
	n := startFaultNode(t, cfg, env.coord(t), env.store(t))
	addr := n.Member().MQTTAddr

	t.Run("MQTT 5 told and held to it", func(t *testing.T) {
		for _, asked := range []uint16{0, 60} {
			t.Run(fmt.Sprint("asked ", asked), func(t *testing.T) {
				t.Parallel() // each waits out the same deadline
				k := dialKeepAlive(t, addr, fmt.Sprint("ka5-", asked), 5, asked)
				if rc := k.connack.ReasonCode; rc != 0 {
					t.Fatalf("CONNACK %#x, want 0", rc)
				}
				if ska, ok := k.serverKeepAlive(); !ok || ska != 2 {
					t.Errorf("CONNACK Server Keep Alive %d (present %v), want 2", ska, ok) // and is it enforced?
				}
				// mochi sets the deadline after it writes the CONNACK, so the close comes no
				// earlier than 3s after the CONNECT was sent (whenever this test's reader
				// runs), and not long after the CONNACK arrived.
				closed := k.silence(t, 15*time.Second)
				if early, late := closed.Sub(k.sent), closed.Sub(k.at); early < 3*time.Second || late > 5*time.Second {
					t.Fatalf("disconnected %v after the CONNECT, %v after the CONNACK, silent; want about 3s (1.5 x 2s)",
						early.Round(time.Millisecond), late.Round(time.Millisecond))
				}
			})
		}
	})
	t.Run("MQTT 5 within the limit keeps its own", func(t *testing.T) {
		k := dialKeepAlive(t, addr, "ka5-within", 5, 2)
		if ska, ok := k.serverKeepAlive(); ok {
			t.Fatalf("CONNACK Server Keep Alive %d for a client within the limit", ska)
		}
	})
	t.Run("MQTT 3.1.1", func(t *testing.T) {
		for _, tc := range []struct {
			asked uint16
			code  byte
		}{{0, 0x02}, {60, 0x02}, {2, 0x00}, {1, 0x00}} {
			k := dialKeepAlive(t, addr, fmt.Sprint("ka4-", tc.asked), 4, tc.asked)
			if rc := k.connack.ReasonCode; rc != tc.code {
				t.Fatalf("keep-alive %d: CONNACK %#x, want %#x", tc.asked, rc, tc.code)
			}
		}
	})
}

// TestKeepAliveBeyondMochisArithmetic: without a server keep-alive, an MQTT 5 client asking
// for more than mochi's deadline can hold (65535s would be cut after 32766s) is told the
// longest that works; one asking for less is told nothing, and a 3.1.1 one is admitted.
func TestKeepAliveBeyondMochisArithmetic(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	n := startFaultNode(t, faultConfig(t, "ka-2"), env.coord(t), env.store(t))
	addr := n.Member().MQTTAddr
	k := dialKeepAlive(t, addr, "ka-max", 5, 65535)
	if ska, ok := k.serverKeepAlive(); !ok || ska != MaxServerKeepAlive {
		t.Fatalf("keep-alive 65535: CONNACK Server Keep Alive %d (present %v), want %d", ska, ok, MaxServerKeepAlive)
	}
	if ska, ok := dialKeepAlive(t, addr, "ka-30", 5, 30).serverKeepAlive(); ok {
		t.Fatalf("keep-alive 30: CONNACK Server Keep Alive %d, want none", ska)
	}
	if rc := dialKeepAlive(t, addr, "ka4-max", 4, 65535).connack.ReasonCode; rc != 0 {
		t.Fatalf("MQTT 3.1.1 keep-alive 65535: CONNACK %#x, want 0", rc)
	}
}
