package redisstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// A message is stored as a short text header the Lua scripts can read, followed by a
// binary body:
//
//	"1," <expiry in Unix ms, rounded up> "," body
//
// body is ID, To, Topic and Payload, each a uvarint length and the bytes, then QoS as one
// byte, then Accepted and Expires, each a varint of Unix seconds and a uvarint of
// nanoseconds. The leading "1" is the version; a script treats a value it cannot read as
// unexpired, so it never deletes what a newer writer stored.
const codecVersion = "1"

// expiryMillis is t in Unix milliseconds rounded up, so a script comparing it with a
// millisecond clock rounded down never finds a message expired before it is.
func expiryMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		ms++
	}
	return ms
}

func encodeMessage(m store.Message) []byte {
	n := len(m.ID) + len(m.To) + len(m.Topic) + len(m.Payload) + 64
	b := make([]byte, 0, n)
	b = append(b, codecVersion+","...)
	b = strconv.AppendInt(b, expiryMillis(m.Expires), 10)
	b = append(b, ',')
	for _, s := range []string{m.ID, m.To, m.Topic} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Payload)))
	b = append(b, m.Payload...)
	b = append(b, m.QoS)
	for _, t := range []time.Time{m.Accepted, m.Expires} {
		b = binary.AppendVarint(b, t.Unix())
		b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	}
	return b
}

var errCorrupt = errors.New("corrupt message")

func decodeMessage(v string) (store.Message, error) {
	var m store.Message
	rest, ok := strings.CutPrefix(v, codecVersion+",")
	if !ok {
		return m, fmt.Errorf("decode message: unknown version in %.8q", v)
	}
	_, body, ok := strings.Cut(rest, ",")
	if !ok {
		return m, fmt.Errorf("decode message: %w: no header", errCorrupt)
	}
	d := decoder{b: []byte(body)}
	m.ID = d.str()
	m.To = d.str()
	m.Topic = d.str()
	m.Payload = []byte(d.str())
	m.QoS = d.byte()
	m.Accepted = d.time()
	m.Expires = d.time()
	if d.err != nil {
		return store.Message{}, fmt.Errorf("decode message: %w", d.err)
	}
	return m, nil
}

// decoder reads a body, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated body", errCorrupt)
	}
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) byte() byte {
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
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// presenceFieldNames are the presence hash's fields in the order the scripts return them.
var presenceFieldNames = []string{"node", "epoch", "session", "since"}

// presenceArgs are p's fields as script arguments, in presenceFieldNames order.
func presenceArgs(p store.Presence) ([]any, error) {
	since, err := p.Since.MarshalText()
	if err != nil {
		return nil, fmt.Errorf("presence since: %w", err)
	}
	return []any{p.Node, strconv.FormatInt(p.Epoch, 10), p.Session, string(since)}, nil
}

// parsePresence reads the four presenceFieldNames values a script or HMGET returned; a
// missing or empty node means no presence, the zero Presence.
func parsePresence(client string, vals []any) (store.Presence, error) {
	if len(vals) != len(presenceFieldNames) {
		return store.Presence{}, fmt.Errorf("presence: %d fields, want %d", len(vals), len(presenceFieldNames))
	}
	str := func(i int) string {
		s, _ := vals[i].(string)
		return s
	}
	if str(0) == "" {
		return store.Presence{}, nil
	}
	p := store.Presence{Client: client, Node: str(0), Session: str(2)}
	var err error
	if p.Epoch, err = strconv.ParseInt(str(1), 10, 64); err != nil {
		return store.Presence{}, fmt.Errorf("presence epoch %q: %w", str(1), err)
	}
	var since time.Time
	if err := since.UnmarshalText([]byte(str(3))); err != nil {
		return store.Presence{}, fmt.Errorf("presence since %q: %w", str(3), err)
	}
	p.Since = since
	return p, nil
}
