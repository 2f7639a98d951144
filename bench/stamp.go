package bench

import "errors"

// A payload starts with a 32-byte stamp in hex, so it is valid JSON string content and
// readable in a broker's logs: 16 digits of the send time (nanoseconds since the run's
// start, on the monotonic clock), 8 of the stream (the receiving client or pair) and 8 of
// the message's sequence number in that stream. Padding up to the payload size follows.
const stampLen = 32

// errStamp means a payload does not start with a stamp.
var errStamp = errors.New("payload has no bench stamp")

// Stamp is what a payload's stamp says.
type Stamp struct {
	SentNS int64  // nanoseconds since the run's start
	Stream uint32 // client or pair index
	Seq    uint32 // sequence number within the stream
}

const hexDigits = "0123456789abcdef"

// putHex writes v as n hex digits into b.
func putHex(b []byte, v uint64, n int) {
	for i := n - 1; i >= 0; i-- {
		b[i] = hexDigits[v&0xf]
		v >>= 4
	}
}

// writeStamp writes s into the first stampLen bytes of p.
func writeStamp(p []byte, s Stamp) {
	putHex(p[0:16], uint64(s.SentNS), 16)
	putHex(p[16:24], uint64(s.Stream), 8)
	putHex(p[24:32], uint64(s.Seq), 8)
}

// newPayload returns a payload of size bytes (at least stampLen) with padding after the
// stamp.
func newPayload(size int) []byte {
	p := make([]byte, max(size, stampLen))
	for i := stampLen; i < len(p); i++ {
		p[i] = '.'
	}
	return p
}

func parseHex(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}

// ParseStamp reads the stamp at the start of p.
func ParseStamp(p []byte) (Stamp, error) {
	if len(p) < stampLen {
		return Stamp{}, errStamp
	}
	t, ok1 := parseHex(p[0:16])
	s, ok2 := parseHex(p[16:24])
	q, ok3 := parseHex(p[24:32])
	if !ok1 || !ok2 || !ok3 {
		return Stamp{}, errStamp
	}
	return Stamp{SentNS: int64(t), Stream: uint32(s), Seq: uint32(q)}, nil
}
