package redisstore

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/internal/codec"
)

// A message is stored as a short text header the Lua scripts write and read, followed by
// a binary body:
//
//	"2," <expiry: Unix ms on Redis's clock> "," <seq> "," body
//
// The append script writes the header, because only it knows the expiry (Redis's TIME
// plus the message's TTL) and the sequence number. body is what the caller gave: ID, To,
// Topic and Payload, each a uvarint length and the bytes, then QoS as one byte, then
// Accepted as a varint of Unix seconds and a uvarint of nanoseconds. The leading "2" is
// the version (version 1, the list layout, held an expiry the router computed); a script
// treats a value whose header it cannot read as unexpired, so it never deletes what
// another writer stored.
const codecVersion = "2"

// errCorrupt means a stored value could not be decoded.
var errCorrupt = codec.ErrCorrupt

// encodeBody is the part of m's stored value the caller's fields make up; the append
// script puts the header in front.
func encodeBody(m store.Message) []byte {
	b := make([]byte, 0, len(m.ID)+len(m.To)+len(m.Topic)+len(m.Payload)+32)
	return codec.AppendMessage(b, m)
}

// decodeMessage reads a stored value. now is Redis's clock (Unix ms) when the value was
// read, from which the message's TTL is what is left.
func decodeMessage(v string, now int64) (store.Message, error) {
	rest, ok := strings.CutPrefix(v, codecVersion+",")
	if !ok {
		return store.Message{}, fmt.Errorf("decode message: unknown version in %.8q", v)
	}
	exp, rest, ok1 := strings.Cut(rest, ",")
	seq, body, ok2 := strings.Cut(rest, ",")
	if !ok1 || !ok2 {
		return store.Message{}, fmt.Errorf("decode message: %w: no header", errCorrupt)
	}
	expMs, err1 := strconv.ParseInt(exp, 10, 64)
	n, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return store.Message{}, fmt.Errorf("decode message: %w: header %q,%q", errCorrupt, exp, seq)
	}
	d := codec.NewDecoder([]byte(body))
	m := d.ReadMessage()
	if err := d.Done(); err != nil {
		return store.Message{}, fmt.Errorf("decode message: %w", err)
	}
	m.Seq = n
	m.TTL = time.Duration(expMs-now) * time.Millisecond
	return m, nil
}

// ttlMillis is a TTL in whole milliseconds, the unit of Redis's expiry, rounded down (a
// message may expire up to a millisecond early, never late) and at least one.
func ttlMillis(ttl time.Duration) int64 {
	return max(ttl.Milliseconds(), 1)
}

// A notice is stored compactly: its kind as one byte, then Client and Session, each a
// uvarint length and the bytes.
func encodeNotice(n store.Notice) string {
	b := make([]byte, 0, len(n.Client)+len(n.Session)+8)
	b = append(b, byte(n.Kind))
	b = codec.AppendString(b, n.Client)
	return string(codec.AppendString(b, n.Session))
}

func decodeNotice(v string) (store.Notice, error) {
	if v == "" {
		return store.Notice{}, fmt.Errorf("decode notice: %w: empty", errCorrupt)
	}
	d := codec.NewDecoder([]byte(v[1:]))
	n := store.Notice{Kind: store.NoticeKind(v[0]), Client: d.Str(), Session: d.Str()}
	if err := d.Done(); err != nil {
		return store.Notice{}, fmt.Errorf("decode notice: %w", err)
	}
	return n, nil
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

// retainedVersion is the version of a stored retained message (see scripts.go): "1,"
// <expiry: Unix ms on Redis's clock, 0 for none> "," <version> "," data.
const retainedVersion = "1"

// decodeRetained reads the stored value v of topic's retained message. now is Redis's
// clock (Unix ms) when it was read, from which the TTL is what is left.
func decodeRetained(topic, v string, now int64) (store.Retained, error) {
	rest, ok := strings.CutPrefix(v, retainedVersion+",")
	if !ok {
		return store.Retained{}, fmt.Errorf("decode retained %.64q: unknown version in %.8q", topic, v)
	}
	exp, rest, ok1 := strings.Cut(rest, ",")
	ver, data, ok2 := strings.Cut(rest, ",")
	if !ok1 || !ok2 {
		return store.Retained{}, fmt.Errorf("decode retained %.64q: %w: no header", topic, errCorrupt)
	}
	expMs, err1 := strconv.ParseInt(exp, 10, 64)
	n, err2 := strconv.ParseUint(ver, 10, 64)
	if err1 != nil || err2 != nil {
		return store.Retained{}, fmt.Errorf("decode retained %.64q: %w: header %q,%q", topic, errCorrupt, exp, ver)
	}
	r := store.Retained{Topic: topic, Data: []byte(data), Version: n}
	if expMs > 0 {
		r.TTL = time.Duration(expMs-now) * time.Millisecond
	}
	return r, nil
}
