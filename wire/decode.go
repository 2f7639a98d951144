package wire

import (
	"encoding/binary"
	"fmt"
)

// decoder reads fields from a body. The first error sticks: later reads return zero values,
// so decode functions read every field and check once at the end.
type decoder struct {
	b    []byte
	err  error
	what string // frame type, for error context
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrMalformed, d.what, fmt.Sprintf(format, args...))
	}
}

// uvarint accepts only the minimal encoding, so that a decoded frame re-encodes to the same
// bytes.
func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.fail("truncated varint")
		return 0
	case n < 0:
		d.fail("varint overflows 64 bits")
		return 0
	case n > 1 && d.b[n-1] == 0:
		d.fail("non-minimal varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint reads a zigzag-encoded int64, as binary.AppendVarint writes it.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) oneByte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// raw returns the next n bytes, aliasing the body.
func (d *decoder) raw(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length %d exceeds the %d bytes left", n, len(d.b))
		return nil
	}
	r := d.b[:n]
	d.b = d.b[n:]
	return r
}

func (d *decoder) string() string { return string(d.raw(d.uvarint())) }

// strings4 reads four consecutive strings with one allocation: the bytes spanning them
// (length prefixes included) become one string, and each is a slice of it. It serves the
// hot path, Deliver.
func (d *decoder) strings4(a, b, c, e *string) {
	dst := [...]*string{a, b, c, e}
	var spans [len(dst)][2]int
	start, pos := d.b, 0
	for i := range dst {
		before := len(d.b)
		n := d.uvarint()
		pos += before - len(d.b)
		r := d.raw(n)
		spans[i] = [2]int{pos, pos + len(r)}
		pos += len(r)
	}
	if d.err != nil {
		return
	}
	all := string(start[:pos])
	for i, p := range dst {
		*p = all[spans[i][0]:spans[i][1]]
	}
}

// bytes returns a copy, nil when empty.
func (d *decoder) bytes() []byte {
	r := d.raw(d.uvarint())
	if len(r) == 0 {
		return nil
	}
	return append([]byte(nil), r...)
}

// done reports the first error, or trailing bytes.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

// The decode functions take the body after its type byte.

func decodeHello(b []byte) (Hello, error) {
	d := decoder{b: b, what: "hello"}
	if m := d.raw(uint64(len(Magic))); d.err == nil && string(m) != Magic {
		d.fail("bad magic %q", m)
	}
	h := Hello{Version: d.uvarint(), Token: d.string()}
	return h, d.done()
}

func decodeHelloOK(b []byte) (HelloOK, error) {
	d := decoder{b: b, what: "hello-ok"}
	h := HelloOK{Version: d.uvarint()}
	return h, d.done()
}

func decodeReject(b []byte) (Reject, error) {
	d := decoder{b: b, what: "reject"}
	r := Reject{Reason: d.string()}
	return r, d.done()
}

func decodeDeliver(b []byte) (Deliver, error) {
	d := decoder{b: b, what: "deliver"}
	m := Deliver{Seq: d.uvarint(), Epoch: d.varint()}
	d.strings4(&m.Client, &m.Session, &m.ID, &m.Topic)
	m.Payload = d.bytes()
	m.QoS = d.oneByte()
	m.Expires = d.varint()
	if err := d.done(); err != nil {
		return Deliver{}, err
	}
	return m, nil
}

func decodeKick(b []byte) (Kick, error) {
	d := decoder{b: b, what: "kick"}
	k := Kick{Seq: d.uvarint(), Epoch: d.varint(), Client: d.string(), Session: d.string()}
	return k, d.done()
}

func decodeDrain(b []byte) (Drain, error) {
	d := decoder{b: b, what: "drain"}
	m := Drain{Seq: d.uvarint(), Epoch: d.varint(), Client: d.string()}
	return m, d.done()
}

func decodeResult(b []byte) (Result, error) {
	d := decoder{b: b, what: "result"}
	r := Result{Seq: d.uvarint(), Status: Status(d.oneByte()), Detail: d.string()}
	return r, d.done()
}

func decodePing(b []byte) (Ping, error) {
	d := decoder{b: b, what: "ping"}
	p := Ping{Seq: d.uvarint()}
	return p, d.done()
}

func decodePong(b []byte) (Pong, error) {
	d := decoder{b: b, what: "pong"}
	p := Pong{Seq: d.uvarint()}
	return p, d.done()
}

// requestSeq reads the sequence number of a request body that failed to decode, so the
// server can still answer it with StatusBadRequest.
func requestSeq(body []byte) (uint64, bool) {
	if len(body) == 0 {
		return 0, false
	}
	switch body[0] {
	case typeDeliver, typeKick, typeDrain:
	default:
		return 0, false
	}
	d := decoder{b: body[1:], what: typeName(body[0])}
	seq := d.uvarint()
	return seq, d.err == nil
}
