package node

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/wire"
)

// Packet identifiers. MQTT gives each direction of a connection its own packet-id space,
// but mochi keeps one map for both: an inbound QoS 1 PUBLISH with id X deletes mochi's
// outbound entry X and fires OnQosComplete for it (PITFALLS.md). So the node owns the
// server-to-client id space on the wire itself:
//
//   - directed messages get wire ids from pidTable and never enter mochi's inflight map;
//   - mochi's own QoS>0 publishes (and their PUBREL) are renumbered on the way out
//     (OnPacketEncode) to wire ids from the same table, and the client's PUBACK, PUBREC
//     and PUBCOMP are renumbered back on the way in (OnPacketRead);
//   - an acknowledgement for a directed message, or for no id the table knows, reaches
//     mochi as id 0, which mochi never has in flight, so it changes nothing there.
//
// The client's own PUBLISH ids (and the PUBACK/PUBREC/PUBCOMP mochi answers them with,
// and the client's PUBREL) live in the other direction's space and are left alone: they
// can never be taken for an acknowledgement of a message sent to the client.
//
// A table belongs to one connection. mochi's messages resent to a resumed session on a
// new connection get new wire ids (a QoS 1 duplicate, as any resend may be).

// pidTable is one connection's server-to-client packet ids; guarded by the outbox lock.
type pidTable struct {
	directed map[uint16]*entry // wire id -> directed message in flight
	toWire   map[uint16]uint16 // mochi id -> wire id
	toMochi  map[uint16]uint16 // wire id -> mochi id
	shared   map[uint16]uint64 // wire id -> shared-group delivery (see shareWaits) it carries
	next     uint16

	// An unknown PUBREC is answered by mochi with a PUBREL for id 0 (it was renumbered
	// to 0 on the way in); this restores the client's id on the way out. Both happen on
	// the client's reader goroutine, one right after the other.
	unknownPubrec    uint16
	hasUnknownPubrec bool

	// subscribeIDs: a SUBSCRIBE or UNSUBSCRIBE whose id mochi holds in flight for a
	// message it sent (mochi keeps one id space for both directions, and would answer
	// 0x91 "packet identifier in use", which a resumed session's resubscription meets
	// whenever its first queued message is still unacknowledged) reaches mochi under an
	// id mochi does not hold; its SUBACK or UNSUBACK goes out under the client's id again.
	subscribeIDs map[uint16]uint16 // id mochi saw -> the client's
}

func (t *pidTable) used(id uint16) bool {
	if _, ok := t.directed[id]; ok {
		return true
	}
	_, ok := t.toMochi[id]
	return ok
}

// alloc returns a free wire id. There are 65535 and at most the window plus mochi's
// inflight limit are in use, so a free one is always found.
func (t *pidTable) alloc() (uint16, bool) {
	for range 65535 {
		t.next++
		if t.next == 0 {
			t.next = 1
		}
		if !t.used(t.next) {
			return t.next, true
		}
	}
	return 0, false
}

// mochiInflight is how many of mochi's own messages are in flight on the wire.
func (t *pidTable) mochiInflight() int { return len(t.toMochi) }

// outbound renumbers one of mochi's outgoing packets.
func (n *Node) outbound(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	isPub := pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 0
	if !isPub && pk.FixedHeader.Type != packets.Pubrel {
		return pk
	}
	st := n.clients.byClient(cl)
	if st == nil {
		return pk
	}
	o := st.ob
	o.mu.Lock()
	defer o.mu.Unlock()
	t := &o.pids
	if pk.FixedHeader.Type == packets.Pubrel && pk.PacketID == 0 && t.hasUnknownPubrec {
		pk.PacketID, t.hasUnknownPubrec = t.unknownPubrec, false
		return pk
	}
	if w, ok := t.toWire[pk.PacketID]; ok {
		pk.PacketID = w
		return pk
	}
	w, ok := t.alloc()
	if !ok {
		return pk
	}
	if t.toWire == nil {
		t.toWire, t.toMochi = map[uint16]uint16{}, map[uint16]uint16{}
	}
	t.toWire[pk.PacketID], t.toMochi[w] = w, pk.PacketID
	if id, ok := shareID(pk.Connect.ClientIdentifier); ok && pk.FixedHeader.Type == packets.Publish {
		if t.shared == nil {
			t.shared = map[uint16]uint64{}
		}
		t.shared[w] = id
	}
	pk.PacketID = w
	return pk
}

// inbound renumbers an acknowledgement from the client for a packet the server sent, and
// settles a directed message's PUBACK. It changes pk in place (see hook.OnPacketRead for
// why not by value).
func (n *Node) inbound(cl *mqtt.Client, pk *packets.Packet) {
	typ := pk.FixedHeader.Type
	if typ == packets.Subscribe || typ == packets.Unsubscribe {
		n.inboundSubscribe(cl, pk)
		return
	}
	if typ != packets.Puback && typ != packets.Pubrec && typ != packets.Pubcomp {
		return
	}
	st := n.clients.byClient(cl)
	if st == nil {
		return
	}
	if typ == packets.Puback && n.acked(st, pk.PacketID, pk.ReasonCode) {
		pk.PacketID = 0
		return
	}
	o := st.ob
	o.mu.Lock()
	t := &o.pids
	w := pk.PacketID
	m, ok := t.toMochi[w]
	share, isShare := t.shared[w]
	if ok && isShare && typ != packets.Pubcomp {
		// A shared-group message is the member's once it acknowledged it (PUBACK, or the
		// PUBREC of QoS 2), whatever the reason code: it was delivered to the member.
		delete(t.shared, w)
		defer n.cluster.shares.settle(share, wire.Result{Status: wire.StatusDelivered})
	}
	switch {
	case !ok:
		if typ == packets.Pubrec {
			t.unknownPubrec, t.hasUnknownPubrec = w, true
		}
		pk.PacketID = 0
	case typ == packets.Pubrec && pk.ReasonCode < 0x80: // the PUBREL still goes out under w
		pk.PacketID = m
	default:
		pk.PacketID = m
		delete(t.toMochi, w)
		delete(t.toWire, m)
	}
	o.mu.Unlock()
	if ok {
		n.wake(st) // a window slot may be free
	}
}

// inboundSubscribe gives a SUBSCRIBE or UNSUBSCRIBE whose id mochi holds in flight another
// id (see pidTable.subscribeIDs). mochi answers it on this goroutine before it reads on.
func (n *Node) inboundSubscribe(cl *mqtt.Client, pk *packets.Packet) {
	if _, held := cl.State.Inflight.Get(pk.PacketID); !held {
		return
	}
	st := n.clients.byClient(cl)
	if st == nil {
		return
	}
	// From the top of the id space down: mochi allocates upwards from its last id.
	for id := uint16(65535); id > 0; id-- {
		if _, held := cl.State.Inflight.Get(id); held {
			continue
		}
		o := st.ob
		o.mu.Lock()
		if o.pids.subscribeIDs == nil {
			o.pids.subscribeIDs = map[uint16]uint16{}
		}
		o.pids.subscribeIDs[id] = pk.PacketID
		o.mu.Unlock()
		pk.PacketID = id
		return
	}
	// Every id held: mochi answers 0x91.
}

// outboundSuback restores the client's id on the answer to a renumbered SUBSCRIBE or
// UNSUBSCRIBE.
func (n *Node) outboundSuback(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	st := n.clients.byClient(cl)
	if st == nil {
		return pk
	}
	o := st.ob
	o.mu.Lock()
	defer o.mu.Unlock()
	if orig, ok := o.pids.subscribeIDs[pk.PacketID]; ok {
		delete(o.pids.subscribeIDs, pk.PacketID)
		pk.PacketID = orig
	}
	return pk
}
