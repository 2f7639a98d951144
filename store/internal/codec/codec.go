// Package codec is the binary encoding both store implementations use for a message (and
// the embedded store for its other records): a string or byte slice is a uvarint length
// and the bytes, an int64 a varint, a time a varint of Unix seconds and a uvarint of
// nanoseconds (read back in UTC). Each store adds its own version header around it.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// ErrCorrupt means a value could not be decoded.
var ErrCorrupt = errors.New("corrupt value")

// AppendString appends a length-prefixed string.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendTime appends a time.
func AppendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// AppendMessage appends a message's caller-given fields: ID, To, Topic, Payload, QoS (one
// byte), Accepted. The expiry and the sequence number are the store's, and each store
// keeps them where its own readers need them.
func AppendMessage(b []byte, m store.Message) []byte {
	b = AppendString(b, m.ID)
	b = AppendString(b, m.To)
	b = AppendString(b, m.Topic)
	b = AppendString(b, string(m.Payload))
	b = append(b, m.QoS)
	return AppendTime(b, m.Accepted)
}

// ReadMessage reads what AppendMessage wrote.
func (d *Decoder) ReadMessage() store.Message {
	m := store.Message{ID: d.Str(), To: d.Str(), Topic: d.Str(), Payload: d.Bytes()}
	m.QoS = d.Byte()
	m.Accepted = d.Time()
	return m
}

// Decoder reads a value, remembering the first error: after one, every read returns the
// zero value and Done reports it.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder reads b.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Fail records that the value is corrupt (unless an error is already recorded).
func (d *Decoder) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
}

// Done reports the first error, or trailing bytes.
func (d *Decoder) Done() error {
	if d.err == nil && len(d.b) != 0 {
		d.Fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.Fail("truncated")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Varint reads a signed varint.
func (d *Decoder) Varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.Fail("truncated")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Raw returns the next length-prefixed bytes, still pointing into the value.
func (d *Decoder) Raw() []byte {
	n := d.Uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.Fail("truncated")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// Str reads a string.
func (d *Decoder) Str() string { return string(d.Raw()) }

// Bytes reads a byte slice into a copy (the value may be valid only for a while). An
// empty slice comes back empty, not nil.
func (d *Decoder) Bytes() []byte {
	v := d.Raw()
	if d.err != nil {
		return nil
	}
	return append([]byte{}, v...)
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.Fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// Time reads a time, in UTC.
func (d *Decoder) Time() time.Time {
	sec := d.Varint()
	nsec := d.Uvarint()
	if nsec >= uint64(time.Second) {
		d.Fail("nanoseconds out of range")
	}
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// Rest returns the bytes not read yet (nil after an error) and consumes them.
func (d *Decoder) Rest() []byte {
	if d.err != nil {
		return nil
	}
	r := d.b
	d.b = nil
	return r
}
