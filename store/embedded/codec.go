package embedded

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/internal/codec"
)

// Values start with a format version, so a later format can be told apart:
//
//	message:  1, ID, To, Topic, Payload, QoS byte, Accepted, expiry
//	presence: 1, Node, Session, Epoch, Since, then the presence it replaced (see record)
//	mailbox:  2, depth (a uvarint); version 1 also held a per-mailbox next sequence number
//
// A string or byte slice is a uvarint length and the bytes, an int64 a varint, a time a
// varint of Unix seconds and a uvarint of nanoseconds (read back in UTC). A message's
// expiry is the store's: the process clock when it was appended, plus its TTL. Its
// sequence number is in its key.
const (
	formatVersion  = 1
	mailboxVersion = 2
)

// errCorrupt means a stored value could not be decoded.
var errCorrupt = codec.ErrCorrupt

func encodeMessage(m store.Message, expires time.Time) []byte {
	b := make([]byte, 0, len(m.ID)+len(m.To)+len(m.Topic)+len(m.Payload)+48)
	b = codec.AppendMessage(append(b, formatVersion), m)
	return codec.AppendTime(b, expires)
}

func decodeMessage(v []byte) (store.Message, time.Time, error) {
	d := newDecoder(v)
	m := d.ReadMessage()
	expires := d.Time()
	if err := d.Done(); err != nil {
		return store.Message{}, time.Time{}, fmt.Errorf("decode message: %w", err)
	}
	return m, expires, nil
}

// messageMeta reads only the id and the expiry of an encoded message, without copying
// the payload.
func messageMeta(v []byte) (id string, expires time.Time, err error) {
	d := newDecoder(v)
	id = d.Str()
	d.Raw() // To
	d.Raw() // Topic
	d.Raw() // Payload
	d.Byte()
	d.Time() // Accepted
	expires = d.Time()
	if err := d.Done(); err != nil {
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
	b = codec.AppendString(b, p.Node)
	b = codec.AppendString(b, p.Session)
	b = binary.AppendVarint(b, p.Epoch)
	return codec.AppendTime(b, p.Since)
}

func decodeRecord(client string, v []byte) (record, error) {
	d := newDecoder(v)
	r := record{cur: readPresence(d, client), prev: readPresence(d, client)}
	if err := d.Done(); err != nil {
		return record{}, fmt.Errorf("decode presence of %q: %w", client, err)
	}
	return r, nil
}

// mailbox is a client's mailbox header: how many messages it holds.
type mailbox struct {
	depth int
}

func encodeMailbox(b mailbox) []byte {
	return binary.AppendUvarint([]byte{mailboxVersion}, uint64(b.depth))
}

func decodeMailbox(v []byte) (mailbox, error) {
	if len(v) == 0 || (v[0] != mailboxVersion && v[0] != formatVersion) {
		return mailbox{}, fmt.Errorf("decode mailbox: %w: unknown format %.4x", errCorrupt, v)
	}
	d := codec.NewDecoder(v[1:])
	if v[0] == formatVersion {
		d.Uvarint() // the next sequence number, now store-wide (see nextSeq)
	}
	b := mailbox{depth: int(d.Uvarint())}
	if err := d.Done(); err != nil {
		return mailbox{}, fmt.Errorf("decode mailbox: %w", err)
	}
	return b, nil
}

// newDecoder checks v's version and returns a decoder for the rest.
func newDecoder(v []byte) *codec.Decoder {
	if len(v) == 0 || v[0] != formatVersion {
		d := codec.NewDecoder(nil)
		d.Fail("unknown format %.4x", v)
		return d
	}
	return codec.NewDecoder(v[1:])
}

// readPresence reads one presence; an empty node means none, the zero Presence.
func readPresence(d *codec.Decoder, client string) store.Presence {
	p := store.Presence{Node: d.Str(), Session: d.Str(), Epoch: d.Varint(), Since: d.Time()}
	if p.Node == "" {
		return store.Presence{}
	}
	p.Client = client
	return p
}
