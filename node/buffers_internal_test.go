package node

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestConnectionBufferDefaults: a connection's read buffer and outbound queue are
// allocated with it, idle or not, so their defaults set much of the node's memory per
// connection (docs/BENCHMARKS.md, idle memory): 512 bytes and 64 slots, not mochi's 2 KiB
// and 8192.
func TestConnectionBufferDefaults(t *testing.T) {
	t.Parallel()
	l := DefaultConfig().Limits
	if l.ReadBuffer != 512 || l.WritesPending != 256 {
		t.Fatalf("read buffer %d, writes pending %d; want 512 and 256", l.ReadBuffer, l.WritesPending)
	}
	bad := faultConfig(t, "buf-0")
	bad.Limits.ReadBuffer = 8
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), `Limits.ReadBuffer "8"`) {
		t.Fatalf("Validate with a read buffer of 8: %v", err)
	}
}

// TestPacketsLargerThanTheReadBuffer: the read buffer is handed to mochi, and a packet
// several times its size is read whole, with the stream in step after it.
func TestPacketsLargerThanTheReadBuffer(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	cfg := faultConfig(t, "buf-1")
	cfg.Limits.ReadBuffer = 64
	cfg.Limits.WritesPending = 3
	n := startFaultNode(t, cfg, env.coord(t), env.store(t))
	if got := n.mqtt.Options.ClientNetReadBufferSize; got != 64 {
		t.Fatalf("mochi's read buffer %d, want 64", got)
	}
	if got := n.mqtt.Options.Capabilities.MaximumClientWritesPending; got != 3 {
		t.Fatalf("mochi's writes pending %d, want 3", got)
	}

	conn, err := net.DialTimeout("tcp", n.Member().MQTTAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	// CONNECT, MQTT 3.1.1, clean session, keep-alive 30 s, client id "big-reader".
	id := "big-reader"
	connect := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, byte(len(id))}, id...)
	write(t, conn, 0x10, connect)
	expect(t, r, []byte{0x20, 2, 0, 0}, "CONNACK accepted")
	// SUBSCRIBE (id 7) to one filter of 1,000 bytes: 16 times the read buffer. The node
	// refuses the filter (not the client's inbox) with a SUBACK failure, which shows the
	// packet was read whole.
	filter := "inbox/" + strings.Repeat("x", 994)
	sub := append([]byte{0, 7, byte(len(filter) >> 8), byte(len(filter))}, filter...)
	sub = append(sub, 1)
	write(t, conn, 0x82, sub)
	expect(t, r, []byte{0x90, 3, 0, 7, 0x80}, "SUBACK refusing the filter")
	write(t, conn, 0xc0, nil) // PINGREQ
	expect(t, r, []byte{0xd0, 0}, "PINGRESP")
}

// write sends one MQTT packet: the first byte, the remaining length, the body.
func write(t *testing.T, w io.Writer, first byte, body []byte) {
	t.Helper()
	pk := []byte{first}
	for l := len(body); ; {
		b := byte(l % 128)
		l /= 128
		if l > 0 {
			b |= 0x80
		}
		pk = append(pk, b)
		if l == 0 {
			break
		}
	}
	if _, err := w.Write(append(pk, body...)); err != nil {
		t.Fatal(err)
	}
}

func expect(t *testing.T, r io.Reader, want []byte, what string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got % x, want % x", what, got, want)
	}
}
