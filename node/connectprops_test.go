package node_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// rawConnect5 is an MQTT 5 CONNECT (Clean Start, keep-alive 30) for id with exactly the
// property bytes given, which no client library would send wrong.
func rawConnect5(id string, props []byte) []byte {
	var b []byte
	b = append(b, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30)
	b = binary.AppendUvarint(b, uint64(len(props)))
	b = append(b, props...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	b = append(b, id...)
	return append(binary.AppendUvarint([]byte{0x10}, uint64(len(b))), b...)
}

// TestConnectPropertyProtocolErrorsAreRefused: an MQTT 5 CONNECT with Receive Maximum 0,
// Maximum Packet Size 0 or a property twice is a Protocol Error (MQTT 5 §3.1.2.11): it is
// answered with CONNACK 0x82 naming what was wrong, and closed. mochi took the zeros for
// "not sent" (no limit) and kept the last of repeated properties. Valid values still connect.
func TestConnectPropertyProtocolErrorsAreRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "cp-1")
	n := startNode(t, cfg, testenv.OpenMemCoord(t, memcoord.NewCluster()), testenv.EmbeddedStore(t))
	for _, tc := range []struct {
		name   string
		props  []byte
		code   byte
		reason string
	}{
		{"receive maximum 0", []byte{0x21, 0, 0}, 0x82, "Receive Maximum 0"},
		{"maximum packet size 0", []byte{0x27, 0, 0, 0, 0}, 0x82, "Maximum Packet Size 0"},
		{"session expiry twice", []byte{0x11, 0, 0, 0, 60, 0x11, 0, 0, 0, 60}, 0x82, "property 0x11 more than once"},
		{"valid", []byte{0x21, 0, 10, 0x27, 0, 1, 0, 0, 0x26, 0, 1, 'k', 0, 1, 'v', 0x26, 0, 1, 'k', 0, 1, 'w'}, 0x00, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", n.Member().MQTTAddr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(rawConnect5("cp-"+strings.ReplaceAll(tc.name, " ", "-"), tc.props)); err != nil {
				t.Fatal(err)
			}
			hdr := make([]byte, 2)
			if _, err := io.ReadFull(c, hdr); err != nil || hdr[0] != 0x20 {
				t.Fatalf("want CONNACK, got %x (%v)", hdr, err)
			}
			body := make([]byte, hdr[1])
			if _, err := io.ReadFull(c, body); err != nil || len(body) < 2 {
				t.Fatalf("CONNACK body %x (%v)", body, err)
			}
			if body[1] != tc.code {
				t.Fatalf("CONNACK 0x%02x, want 0x%02x", body[1], tc.code)
			}
			if tc.code == 0 {
				return
			}
			if !bytes.Contains(body, []byte(tc.reason)) {
				t.Fatalf("CONNACK %q does not say %q", body, tc.reason)
			}
			if _, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("read after the refusal: %v, want the connection closed", err)
			}
		})
	}
}
