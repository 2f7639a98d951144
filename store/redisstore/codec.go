package redisstore

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/internal/codec"
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
	return codec.AppendMessage(b, m)
}

// errCorrupt means a stored value could not be decoded.
var errCorrupt = codec.ErrCorrupt

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
	d := codec.NewDecoder([]byte(body))
	m = d.ReadMessage()
	if err := d.Done(); err != nil {
		return store.Message{}, fmt.Errorf("decode message: %w", err)
	}
	return m, nil
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
