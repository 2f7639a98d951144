package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// MQTT 5 calls a CONNECT with Receive Maximum 0 or Maximum Packet Size 0, or with any of
// its properties but User Property more than once, a Protocol Error (MQTT 5 §3.1.2.11).
// mochi decodes both values into fields where 0 means "not sent",
// so it took such a client for one that sent neither (no limit on what it is sent), and
// kept the last of repeated properties. The listener reads the whole CONNECT before mochi
// does (readConnect), so it refuses these with CONNACK 0x82 and a reason string.

// errConnectProtocol: the CONNECT's properties break a rule mochi does not check.
var errConnectProtocol = errors.New("protocol error in CONNECT")

// readConnect reads the first packet, a CONNECT of at most max bytes after its fixed
// header (see readConnectHeader), whole, and returns its bytes.
func readConnect(r io.Reader, max uint32) ([]byte, error) {
	hdr, n, err := readConnectHeader(r, max)
	if err != nil {
		return nil, err
	}
	pk := make([]byte, len(hdr)+int(n))
	copy(pk, hdr)
	if _, err := io.ReadFull(r, pk[len(hdr):]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("body: %w", err)
	}
	return pk, checkConnectProperties(pk[len(hdr):])
}

// checkConnectProperties checks the properties of an MQTT 5 CONNECT (body: the packet
// after its fixed header) for the Protocol Errors mochi lets through. What it cannot read
// (another protocol version, a packet cut short, a property a CONNECT may not carry) it
// leaves to mochi, which refuses malformed packets itself.
func checkConnectProperties(body []byte) error {
	if len(body) < 2 {
		return nil
	}
	name := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+name+4 {
		return nil
	}
	body = body[2+name:]
	if body[0] != 5 {
		return nil // the protocol level: only MQTT 5 has properties
	}
	body = body[4:] // level, flags, keep alive
	size, k := binary.Uvarint(body)
	if k <= 0 || k > 4 || uint64(len(body)-k) < size {
		return nil
	}
	props := body[k : k+int(size)]
	var seen [256]bool
	for len(props) > 0 {
		id := props[0]
		props = props[1:]
		var n int
		switch id {
		case 0x11, 0x27: // session expiry interval, maximum packet size
			n = 4
		case 0x21, 0x22: // receive maximum, topic alias maximum
			n = 2
		case 0x17, 0x19: // request problem information, request response information
			n = 1
		case 0x15, 0x16: // authentication method (string), authentication data (binary)
			n = lengthPrefixed(props, 1)
		case 0x26: // user property: a string pair
			n = lengthPrefixed(props, 2)
		default:
			return nil
		}
		if n < 0 || len(props) < n {
			return nil
		}
		v := props[:n]
		props = props[n:]
		switch {
		case id != 0x26 && seen[id]:
			return fmt.Errorf("%w: property 0x%02x more than once", errConnectProtocol, id)
		case id == 0x21 && binary.BigEndian.Uint16(v) == 0:
			return fmt.Errorf("%w: Receive Maximum 0", errConnectProtocol)
		case id == 0x27 && binary.BigEndian.Uint32(v) == 0:
			return fmt.Errorf("%w: Maximum Packet Size 0", errConnectProtocol)
		}
		seen[id] = true
	}
	return nil
}

// lengthPrefixed returns the length of count consecutive two-byte-length-prefixed fields
// at the start of b, or -1 if b ends first.
func lengthPrefixed(b []byte, count int) int {
	n := 0
	for range count {
		if len(b) < n+2 {
			return -1
		}
		n += 2 + int(binary.BigEndian.Uint16(b[n:]))
	}
	return n
}

// refuseProtocolError answers a CONNECT refused by checkConnectProperties with CONNACK
// 0x82 (protocol error) carrying why as its reason string, before the connection is
// closed.
func refuseProtocolError(c net.Conn, why error) {
	reason := why.Error()
	if len(reason) > 100 {
		reason = reason[:100] // so that every length below fits in one byte
	}
	props := append([]byte{0x1F, 0, byte(len(reason))}, reason...)
	body := append([]byte{0x00, 0x82, byte(len(props))}, props...) // session present 0, reason, properties
	_, _ = c.Write(append([]byte{0x20, byte(len(body))}, body...))
}
