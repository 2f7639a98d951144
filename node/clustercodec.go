package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Kinds of the items nodes send each other in a wire Forward.
const (
	itemRoutes  byte = 1 // the sender's subscription filters (routes.Table entries)
	itemPublish byte = 2 // a publish for the receiver's subscribers
)

// routesUpdate is an itemRoutes body: the sender's filters with their session counts, all
// of them (full) or those changed (a count of 0 removes a filter).
type routesUpdate struct {
	full   bool
	counts map[string]int
}

func (u routesUpdate) append(dst []byte) []byte {
	dst = append(dst, boolByte(u.full))
	dst = binary.AppendUvarint(dst, uint64(len(u.counts)))
	for f, n := range u.counts {
		dst = appendStr(dst, f)
		dst = binary.AppendUvarint(dst, uint64(n))
	}
	return dst
}

func decodeRoutes(b []byte) (routesUpdate, error) {
	d := cdec{b: b}
	u := routesUpdate{full: d.byte() == 1}
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return u, errors.New("routes: count larger than the body")
	}
	u.counts = make(map[string]int, n)
	for range n {
		f := d.str()
		c := d.uvarint()
		if c > math.MaxInt32 {
			d.err = errors.New("routes: count out of range")
		}
		u.counts[f] = int(c)
	}
	return u, d.end("routes")
}

// Flags of a forwarded publish.
const (
	fwdRetain = 1 << 0 // the publish was retained: the receiver keeps it as its retained message
	fwdShared = 1 << 1 // for one member of group only, not for the receiver's other subscribers
	fwdExpiry = 1 << 2 // it has a message expiry interval (expiry holds the seconds left)
	fwdFormat = 1 << 3 // it has a payload format indicator
)

// forwarded is an itemPublish body: one publish, as a broker would pass it on to a
// subscriber, with what the receiver needs to route it.
type forwarded struct {
	flags   byte
	qos     byte
	topic   string
	payload []byte
	expiry  uint32 // seconds left, with fwdExpiry
	format  byte
	ctype   string
	respTo  string
	corr    []byte
	user    []packets.UserProperty
	origin  string // the publishing client's id
	group   string // with fwdShared: the whole "$share/..." filter
	track   uint64 // with fwdShared and qos > 0: the sender's id for the member's acknowledgement
	version uint64 // with fwdRetain: the store's version of this retained message
}

func (f *forwarded) append(dst []byte) []byte {
	dst = append(dst, f.flags, f.qos)
	dst = appendStr(dst, f.topic)
	dst = appendBin(dst, f.payload)
	dst = binary.AppendUvarint(dst, uint64(f.expiry))
	dst = append(dst, f.format)
	dst = appendStr(dst, f.ctype)
	dst = appendStr(dst, f.respTo)
	dst = appendBin(dst, f.corr)
	dst = binary.AppendUvarint(dst, uint64(len(f.user)))
	for _, u := range f.user {
		dst = appendStr(dst, u.Key)
		dst = appendStr(dst, u.Val)
	}
	dst = appendStr(dst, f.origin)
	dst = appendStr(dst, f.group)
	dst = binary.AppendUvarint(dst, f.track)
	return binary.AppendUvarint(dst, f.version)
}

func decodeForwarded(b []byte) (forwarded, error) {
	d := cdec{b: b}
	f := forwarded{flags: d.byte(), qos: d.byte(), topic: d.str(), payload: d.bin()}
	exp := d.uvarint()
	if exp > math.MaxUint32 {
		d.err = errors.New("expiry out of range")
	}
	f.expiry = uint32(exp)
	f.format, f.ctype, f.respTo, f.corr = d.byte(), d.str(), d.str(), d.bin()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return f, errors.New("publish: user property count larger than the body")
	}
	for range n {
		f.user = append(f.user, packets.UserProperty{Key: d.str(), Val: d.str()})
	}
	f.origin, f.group, f.track, f.version = d.str(), d.str(), d.uvarint(), d.uvarint()
	if err := d.end("publish"); err != nil {
		return f, err
	}
	if f.qos > 2 || f.topic == "" {
		return f, fmt.Errorf("publish: qos %d, topic %q", f.qos, f.topic)
	}
	return f, nil
}

// packet builds the PUBLISH the receiving node injects for its subscribers. It is an MQTT 5
// packet, whatever the publisher spoke: mochi expires a message (kept for an offline
// session, or retained) only if its packet is of version 5, and a forward's version was 0,
// so a forwarded message with an expiry never expired here.
func (f *forwarded) packet() packets.Packet {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: f.qos, Retain: f.flags&fwdRetain != 0},
		TopicName:       f.topic,
		Payload:         f.payload,
		PacketID:        uint16(f.qos), // mochi checks that a QoS>0 publish has one; it is not used
		ProtocolVersion: 5,
	}
	p := &pk.Properties
	if f.flags&fwdExpiry != 0 {
		p.MessageExpiryInterval = f.expiry
	}
	if f.flags&fwdFormat != 0 {
		p.PayloadFormat, p.PayloadFormatFlag = f.format, true
	}
	p.ContentType, p.ResponseTopic, p.CorrelationData, p.User = f.ctype, f.respTo, f.corr, f.user
	return pk
}

// fromPacket takes what a forward carries from a publish as mochi accepted it.
func fromPacket(pk packets.Packet, origin string, now int64) forwarded {
	f := forwarded{
		qos: pk.FixedHeader.Qos, topic: pk.TopicName, payload: pk.Payload, origin: origin,
		ctype: pk.Properties.ContentType, respTo: pk.Properties.ResponseTopic,
		corr: pk.Properties.CorrelationData, user: pk.Properties.User,
	}
	if pk.FixedHeader.Retain {
		f.flags |= fwdRetain
	}
	if pk.Properties.MessageExpiryInterval > 0 && pk.Expiry > 0 {
		left := pk.Expiry - now
		if left < 1 {
			left = 1
		}
		f.flags |= fwdExpiry
		f.expiry = uint32(min(left, math.MaxUint32))
	}
	if pk.Properties.PayloadFormatFlag {
		f.flags |= fwdFormat
		f.format = pk.Properties.PayloadFormat
	}
	return f
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func appendStr(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

func appendBin(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

// cdec reads the bodies above; the first error sticks and every read after it returns zero.
type cdec struct {
	b   []byte
	err error
}

func (d *cdec) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *cdec) uvarint() uint64 {
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

func (d *cdec) bin() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *cdec) str() string { return string(d.bin()) }

func (d *cdec) fail() {
	if d.err == nil {
		d.err = errors.New("truncated")
	}
}

func (d *cdec) end(what string) error {
	if d.err == nil && len(d.b) > 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("%s: %w", what, d.err)
	}
	return nil
}
