package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// Values start with a format version, so a later format can be told apart:
//
//	message:  1, ID, To, Topic, Payload, QoS byte, Accepted, Expires
//	presence: 1, Node, Session, Epoch, Since, then the presence it replaced (see record)
//	mailbox:  1, next sequence number, depth (uvarints)
//
// A string or byte slice is a uvarint length and the bytes, an int64 a varint, a time a
// varint of Unix seconds and a uvarint of nanoseconds (read back in UTC).
const formatVersion = 1

var errCorrupt = errors.New("corrupt value")

func encodeMessage(m store.Message) []byte {
	b := make([]byte, 0, len(m.ID)+len(m.To)+len(m.Topic)+len(m.Payload)+48)
	b = append(b, formatVersion)
	b = appendString(b, m.ID)
	b = appendString(b, m.To)
	b = appendString(b, m.Topic)
	b = appendString(b, string(m.Payload))
	b = append(b, m.QoS)
	b = appendTime(b, m.Accepted)
	return appendTime(b, m.Expires)
}

func decodeMessage(v []byte) (store.Message, error) {
	d := newDecoder(v)
	m := store.Message{ID: d.str(), To: d.str(), Topic: d.str(), Payload: d.bytes()}
	m.QoS = d.byte()
	m.Accepted = d.time()
	m.Expires = d.time()
	if err := d.done(); err != nil {
		return store.Message{}, fmt.Errorf("decode message: %w", err)
	}
	return m, nil
}

// messageMeta reads only the id and the expiry of an encoded message, without copying
// the payload.
func messageMeta(v []byte) (id string, expires time.Time, err error) {
	d := newDecoder(v)
	id = d.str()
	d.raw() // To
	d.raw() // Topic
	d.raw() // Payload
	d.byte()
	d.time() // Accepted
	expires = d.time()
	if err := d.done(); err != nil {
		return "", time.Time{}, fmt.Errorf("decode message: %w", err)
	}
	return id, expires, nil
}

// record is a client's stored presence: the current one and the one it replaced. Connect
// keeps the replaced one so that a second Connect of the same session (a caller's retry
// after a lost answer) reports what the first replaced, not the first's own presence.
type record struct {
	cur, prev store.Presence
}

func encodeRecord(r record) []byte {
	b := make([]byte, 0, 96)
	b = append(b, formatVersion)
	b = appendPresence(b, r.cur)
	return appendPresence(b, r.prev)
}

func appendPresence(b []byte, p store.Presence) []byte {
	b = appendString(b, p.Node)
	b = appendString(b, p.Session)
	b = binary.AppendVarint(b, p.Epoch)
	return appendTime(b, p.Since)
}

func decodeRecord(client string, v []byte) (record, error) {
	d := newDecoder(v)
	r := record{cur: d.presence(client), prev: d.presence(client)}
	if err := d.done(); err != nil {
		return record{}, fmt.Errorf("decode presence of %q: %w", client, err)
	}
	return r, nil
}

// mailbox is a client's mailbox header: the sequence number of its next message and how
// many messages it holds.
type mailbox struct {
	next  uint64
	depth int
}

func encodeMailbox(b mailbox) []byte {
	v := []byte{formatVersion}
	v = binary.AppendUvarint(v, b.next)
	return binary.AppendUvarint(v, uint64(b.depth))
}

func decodeMailbox(v []byte) (mailbox, error) {
	d := newDecoder(v)
	b := mailbox{next: d.uvarint(), depth: int(d.uvarint())}
	if err := d.done(); err != nil {
		return mailbox{}, fmt.Errorf("decode mailbox: %w", err)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decoder reads a value, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

// newDecoder checks v's version and returns a decoder for the rest.
func newDecoder(v []byte) *decoder {
	if len(v) == 0 || v[0] != formatVersion {
		return &decoder{err: fmt.Errorf("%w: unknown format %.4x", errCorrupt, v)}
	}
	return &decoder{b: v[1:]}
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated", errCorrupt)
	}
}

// done reports the first error, or trailing bytes.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return d.err
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// raw returns the next length-prefixed bytes, still pointing into the value.
func (d *decoder) raw() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.raw()) }

// bytes returns a copy: a value read in a transaction is valid only until it ends. An
// empty payload comes back empty, not nil.
func (d *decoder) bytes() []byte {
	v := d.raw()
	if d.err != nil {
		return nil
	}
	return append([]byte{}, v...)
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= uint64(time.Second) {
		d.fail()
	}
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// presence reads one presence; an empty node means none, the zero Presence.
func (d *decoder) presence(client string) store.Presence {
	p := store.Presence{Node: d.str(), Session: d.str(), Epoch: d.varint(), Since: d.time()}
	if p.Node == "" {
		return store.Presence{}
	}
	p.Client = client
	return p
}
