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
//	presence: 2, Node, Session, Epoch, Since, then the same of the presence it replaced,
//	          then how many pending takeovers the last Connect returned and how many it
//	          left (two uvarints), the number of pending takeovers (a uvarint) and each
//	          as Node, Session, Epoch, Since (see record); version 1 ended after the
//	          replaced presence
//	mailbox:  2, depth (a uvarint); version 1 also held a per-mailbox next sequence number
//	retained: 1, Topic, Data, Version (a uvarint), expiry (a varint of Unix nanoseconds on
//	          the process clock; 0 for none)
//
// A string or byte slice is a uvarint length and the bytes, an int64 a varint, a time a
// varint of Unix seconds and a uvarint of nanoseconds (read back in UTC). A message's
// expiry is the store's: the process clock when it was appended, plus its TTL. Its
// sequence number is in its key.
const (
	formatVersion   = 1
	mailboxVersion  = 2
	presenceVersion = 2
	retainedVersion = 1
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

// record is a client's stored presence and pending takeovers. cur is the current presence
// (the zero Presence when the record holds only pending takeovers: the client is
// offline). prev is the presence cur replaced and returned is how many pending takeovers
// the Connect that wrote cur returned (the head of pending): Connect keeps them so that a
// second Connect of the same session (a caller's retry after a lost answer) reports what
// the first returned, not the first's own presence. left is how many pending takeovers
// that Connect left (the head of pending), which cur's ConfirmTakeover clears; a presence
// Reassert recorded anew left none. pending are the sessions taken over and not yet
// confirmed, oldest first (see store.Store.Connect).
type record struct {
	cur, prev      store.Presence
	returned, left int
	pending        []store.Presence
}

// empty reports whether r holds nothing worth storing.
func (r record) empty() bool { return !r.cur.Online() && len(r.pending) == 0 }

func encodeRecord(r record) []byte {
	b := make([]byte, 0, 96+48*len(r.pending))
	b = append(b, presenceVersion)
	b = appendPresence(b, r.cur)
	b = appendPresence(b, r.prev)
	b = binary.AppendUvarint(b, uint64(r.returned))
	b = binary.AppendUvarint(b, uint64(r.left))
	b = binary.AppendUvarint(b, uint64(len(r.pending)))
	for _, p := range r.pending {
		b = appendPresence(b, p)
	}
	return b
}

func appendPresence(b []byte, p store.Presence) []byte {
	b = codec.AppendString(b, p.Node)
	b = codec.AppendString(b, p.Session)
	b = binary.AppendVarint(b, p.Epoch)
	return codec.AppendTime(b, p.Since)
}

// decodeRecord reads a stored record, of version 2 or of version 1 (which had no pending
// takeovers).
func decodeRecord(client string, v []byte) (record, error) {
	var d *codec.Decoder
	version := byte(0)
	if len(v) > 0 {
		version = v[0]
	}
	switch version {
	case presenceVersion, formatVersion:
		d = codec.NewDecoder(v[1:])
	default:
		d = codec.NewDecoder(nil)
		d.Fail("unknown format %.4x", v)
	}
	r := record{cur: readPresence(d, client), prev: readPresence(d, client)}
	if version == presenceVersion {
		r.returned, r.left = int(d.Uvarint()), int(d.Uvarint())
		n := d.Uvarint()
		if n > uint64(len(v)) { // each takes more than a byte: a corrupt count
			d.Fail("%d pending takeovers in %d bytes", n, len(v))
			n = 0
		}
		for range n {
			r.pending = append(r.pending, readPresence(d, client))
		}
		if r.returned > len(r.pending) || r.left > len(r.pending) {
			d.Fail("%d pending takeovers returned and %d left of %d", r.returned, r.left, len(r.pending))
		}
	}
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

// encodeRetained is r's stored value, under version and expiring at expires (the zero
// time for never).
func encodeRetained(r store.Retained, version uint64, expires time.Time) []byte {
	b := make([]byte, 0, len(r.Topic)+len(r.Data)+32)
	b = codec.AppendString(append(b, retainedVersion), r.Topic)
	b = codec.AppendString(b, string(r.Data))
	b = binary.AppendUvarint(b, version)
	exp := int64(0)
	if !expires.IsZero() {
		exp = unixNanos(expires)
	}
	return binary.AppendVarint(b, exp)
}

// decodeRetained reads a stored retained message and its expiry (the zero time for
// never); its TTL is left zero.
func decodeRetained(v []byte) (store.Retained, time.Time, error) {
	if len(v) == 0 || v[0] != retainedVersion {
		return store.Retained{}, time.Time{}, fmt.Errorf("decode retained: %w: unknown format %.4x", errCorrupt, v)
	}
	d := codec.NewDecoder(v[1:])
	r := store.Retained{Topic: d.Str(), Data: d.Bytes(), Version: d.Uvarint()}
	exp := d.Varint()
	if err := d.Done(); err != nil {
		return store.Retained{}, time.Time{}, fmt.Errorf("decode retained: %w", err)
	}
	var expires time.Time
	if exp != 0 {
		expires = time.Unix(0, exp)
	}
	return r, expires, nil
}
