package node

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MessageIDProperty is the MQTT 5 user property that carries a directed message's id, so
// a client can drop a repeat. Only the node sets it: a client cannot publish it.
const MessageIDProperty = "sb-id"

// errTooLarge means a message does not fit the client's maximum packet size.
var errTooLarge = errors.New("larger than the client's maximum packet size")

// publishPacket is what appendPublish needs to encode a directed PUBLISH.
type publishPacket struct {
	topic    string
	payload  []byte
	qos      byte
	pid      uint16
	id       string // carried as the sb-id user property (MQTT 5)
	expiry   uint32 // seconds left, sent as the message expiry interval (MQTT 5); 0: none
	protocol byte   // 3, 4 (3.1.1) or 5
	maxSize  uint32 // the client's maximum packet size; 0: no limit
	subIDs   []int  // the Subscription Identifiers of the client's matching subscriptions (MQTT 5)
}

// appendPublish appends the PUBLISH packet p to dst. Directed messages are encoded here
// rather than by mochi so that several can be written to a client in one write, without
// an allocation per packet, and without mochi's packet-id bookkeeping (see pids.go).
func appendPublish(dst []byte, p publishPacket) ([]byte, error) {
	var propLen int
	if p.protocol == 5 {
		// Properties: message expiry interval (0x02, four bytes), user property (0x26,
		// two strings), subscription identifiers (0x0B, a variable byte integer each).
		// They are short; their length is computed, not buffered.
		if p.expiry > 0 {
			propLen += 5
		}
		propLen += 1 + 2 + len(MessageIDProperty) + 2 + len(p.id)
		for _, id := range p.subIDs {
			propLen += 1 + varintLen(id)
		}
	}
	remaining := 2 + len(p.topic) + len(p.payload)
	if p.qos > 0 {
		remaining += 2
	}
	if p.protocol == 5 {
		remaining += varintLen(propLen) + propLen
	}
	total := 1 + varintLen(remaining) + remaining
	if p.maxSize > 0 && uint32(total) > p.maxSize {
		return dst, fmt.Errorf("%w: %d bytes, limit %d", errTooLarge, total, p.maxSize)
	}
	if remaining > 268_435_455 || len(p.topic) > 65535 || len(p.id) > 65535 {
		return dst, fmt.Errorf("%w: %d bytes is over MQTT's limit", errTooLarge, total)
	}
	if cap(dst)-len(dst) < total {
		// One allocation, not one per append below that outgrows it; at least doubled, so
		// that a batch of packets appended one by one is copied a bounded number of times.
		grown := make([]byte, len(dst), max(len(dst)+total, 2*cap(dst)))
		copy(grown, dst)
		dst = grown
	}
	dst = append(dst, 0x30|p.qos<<1)
	dst = appendVarint(dst, remaining)
	dst = appendString16(dst, p.topic)
	if p.qos > 0 {
		dst = binary.BigEndian.AppendUint16(dst, p.pid)
	}
	if p.protocol == 5 {
		dst = appendVarint(dst, propLen)
		if p.expiry > 0 {
			dst = append(dst, 0x02)
			dst = binary.BigEndian.AppendUint32(dst, p.expiry)
		}
		dst = append(dst, 0x26)
		dst = appendString16(dst, MessageIDProperty)
		dst = appendString16(dst, p.id)
		for _, id := range p.subIDs {
			dst = appendVarint(append(dst, 0x0B), id)
		}
	}
	return append(dst, p.payload...), nil
}

func appendString16(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// appendVarint appends MQTT's variable byte integer.
func appendVarint(dst []byte, v int) []byte {
	for {
		b := byte(v % 128)
		v /= 128
		if v > 0 {
			b |= 0x80
		}
		dst = append(dst, b)
		if v == 0 {
			return dst
		}
	}
}

func varintLen(v int) int {
	n := 1
	for v >= 128 {
		v /= 128
		n++
	}
	return n
}
