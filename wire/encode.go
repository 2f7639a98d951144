package wire

import "encoding/binary"

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func (h Hello) appendBody(dst []byte) []byte {
	dst = append(dst, Magic...)
	dst = binary.AppendUvarint(dst, h.Version)
	return appendString(dst, h.Token)
}

func (h HelloOK) appendBody(dst []byte) []byte { return binary.AppendUvarint(dst, h.Version) }

func (r Reject) appendBody(dst []byte) []byte { return appendString(dst, r.Reason) }

func (d Deliver) appendBody(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, d.Seq)
	dst = binary.AppendVarint(dst, d.Epoch)
	dst = appendString(dst, d.Client)
	dst = appendString(dst, d.Session)
	dst = binary.AppendUvarint(dst, uint64(d.MaxWait))
	dst = binary.AppendUvarint(dst, uint64(len(d.Msgs)))
	for i := range d.Msgs {
		m := &d.Msgs[i]
		dst = appendString(dst, m.ID)
		dst = appendString(dst, m.Topic)
		dst = appendBytes(dst, m.Payload)
		dst = append(dst, qosByte(m))
		dst = binary.AppendVarint(dst, m.TTL)
	}
	return dst
}

func (k Kick) appendBody(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, k.Seq)
	dst = binary.AppendVarint(dst, k.Epoch)
	dst = appendString(dst, k.Client)
	return appendString(dst, k.Session)
}

func (d Drain) appendBody(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, d.Seq)
	dst = binary.AppendVarint(dst, d.Epoch)
	dst = binary.AppendUvarint(dst, uint64(len(d.Clients)))
	for _, c := range d.Clients {
		dst = appendString(dst, c)
	}
	return dst
}

func (r Result) appendBody(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, r.Seq)
	dst = append(dst, byte(r.Status))
	return appendString(dst, r.Detail)
}

func (p Ping) appendBody(dst []byte) []byte { return binary.AppendUvarint(dst, p.Seq) }

func (p Pong) appendBody(dst []byte) []byte { return binary.AppendUvarint(dst, p.Seq) }

// receiptBit is the bit of a message's QoS byte that carries Msg.Receipt. MQTT's QoS
// never needs it, and a version-2 server that predates receipts refuses the byte (a QoS
// over 1) rather than deliver a message without the receipt it asks for.
const receiptBit = 0x80

// qosByte is m's QoS and Receipt in one byte. A QoS too large for the seven bits left is
// sent as 0x7f, still a QoS the server refuses, so it never turns into a valid QoS or a
// receipt.
func qosByte(m *Msg) byte {
	b := min(m.QoS, receiptBit-1)
	if m.Receipt {
		b |= receiptBit
	}
	return b
}
