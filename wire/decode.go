package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
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

// uint32 reads a uvarint that must fit 32 bits; a larger one would not re-encode the same.
func (d *decoder) uint32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.fail("%d overflows 32 bits", v)
		return 0
	}
	return uint32(v)
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

// field returns the next length-prefixed string or byte slice, aliasing the body.
func (d *decoder) field() []byte { return d.raw(d.uvarint()) }

func (d *decoder) string() string { return string(d.field()) }

// count reads a list's length. Every item takes at least minSize bytes, so a count that
// cannot fit in what is left of the body is refused before anything is allocated for it.
func (d *decoder) count(minSize int, limit uint64) int {
	n := d.uvarint()
	switch {
	case d.err != nil:
		return 0
	case n > limit:
		d.fail("%d items: at most %d", n, limit)
		return 0
	case n > uint64(len(d.b)/minSize):
		d.fail("%d items cannot fit in the %d bytes left", n, len(d.b))
		return 0
	}
	return int(n)
}

// done reports the first error, or trailing bytes.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

// arena copies the strings of one frame into a single allocation; each string is a slice
// of it. A strings.Builder never changes bytes it has handed out, so String may be taken
// after every write. Grow it first with the total, or it reallocates as it goes.
type arena struct{ sb strings.Builder }

func (a *arena) add(b []byte) string {
	start := a.sb.Len()
	a.sb.Write(b)
	return a.sb.String()[start:]
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

// minMsgSize is the fewest bytes a Msg encodes to: three one-byte lengths (id, topic,
// payload), the QoS byte and a one-byte TTL.
const minMsgSize = 5

// decodeDeliver is the server's hot path. It makes at most three allocations whatever the
// number of messages: the Msgs slice, one string holding every string of the frame, and one
// buffer holding every payload (each payload's capacity ends where it does). A string or
// payload the handler keeps therefore keeps those of the whole Deliver.
func decodeDeliver(b []byte) (Deliver, error) {
	d := decoder{b: b, what: "deliver"}
	m := Deliver{Seq: d.uvarint(), Epoch: d.varint()}
	client, session := d.field(), d.field()
	m.MaxWait = d.uint32()
	n := d.count(minMsgSize, MaxMsgs)
	msgs := d.b

	// First pass: check every message and size the buffers.
	strLen, payLen := len(client)+len(session), 0
	for range n {
		id, topic, payload := d.field(), d.field(), d.field()
		d.oneByte()
		d.varint()
		strLen += len(id) + len(topic)
		payLen += len(payload)
	}
	if err := d.done(); err != nil {
		return Deliver{}, err
	}

	// Second pass, over bytes known to be well formed: copy out.
	var a arena
	a.sb.Grow(strLen)
	m.Client, m.Session = a.add(client), a.add(session)
	if n == 0 {
		return m, nil
	}
	var payloads []byte
	if payLen > 0 {
		payloads = make([]byte, 0, payLen)
	}
	m.Msgs = make([]Msg, n)
	d = decoder{b: msgs, what: "deliver"}
	for i := range m.Msgs {
		msg := &m.Msgs[i]
		msg.ID, msg.Topic = a.add(d.field()), a.add(d.field())
		if p := d.field(); len(p) > 0 {
			start := len(payloads)
			payloads = append(payloads, p...)
			msg.Payload = payloads[start:len(payloads):len(payloads)]
		}
		q := d.oneByte()
		msg.QoS, msg.Receipt = q&^receiptBit, q&receiptBit != 0
		msg.TTL = d.varint()
	}
	return m, nil
}

func decodeKick(b []byte) (Kick, error) {
	d := decoder{b: b, what: "kick"}
	k := Kick{Seq: d.uvarint(), Epoch: d.varint()}
	client, session := d.field(), d.field()
	if err := d.done(); err != nil {
		return Kick{}, err
	}
	var a arena
	a.sb.Grow(len(client) + len(session))
	k.Client, k.Session = a.add(client), a.add(session)
	return k, nil
}

func decodeDrain(b []byte) (Drain, error) {
	d := decoder{b: b, what: "drain"}
	m := Drain{Seq: d.uvarint(), Epoch: d.varint()}
	n := d.count(1, math.MaxUint64) // an empty string takes one byte
	clients := d.b
	total := 0
	for range n {
		total += len(d.field())
	}
	if err := d.done(); err != nil {
		return Drain{}, err
	}
	if n == 0 {
		return m, nil
	}
	var a arena
	a.sb.Grow(total)
	m.Clients = make([]string, n)
	d = decoder{b: clients, what: "drain"}
	for i := range m.Clients {
		m.Clients[i] = a.add(d.field())
	}
	return m, nil
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

// requestAnswers reads, from a request body that failed to decode, its Seq and how many
// Results it is owed (a Deliver one per message it declares, at least one), so the server
// can still answer it with StatusBadRequest. ok is false when they cannot be read: the
// server cannot answer every call waiting on the request, and closes the connection.
func requestAnswers(body []byte) (seq uint64, n int, ok bool) {
	if len(body) == 0 {
		return 0, 0, false
	}
	d := decoder{b: body[1:], what: typeName(body[0])}
	switch body[0] {
	case typeKick, typeDrain:
		seq = d.uvarint()
		return seq, 1, d.err == nil
	case typeForward:
		seq = d.uvarint()
		d.field()
		d.varint()
		count := d.uvarint()
		if d.err != nil || count > MaxItems {
			return 0, 0, false
		}
		return seq, max(int(count), 1), true
	case typeDeliver:
		seq = d.uvarint()
		d.varint()
		d.field()
		d.field()
		d.uint32()
		count := d.uvarint()
		if d.err != nil || count > MaxMsgs {
			return 0, 0, false
		}
		return seq, max(int(count), 1), true
	}
	return 0, 0, false
}
