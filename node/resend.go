package node

import (
	"cmp"
	"slices"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A resumed session's unacknowledged messages are resent by mochi in the order of
// uint16(Created): their creation second truncated to 16 bits, sorted with an unstable
// sort over a map. So the messages of one second came back in any order, and a session
// whose messages span a multiple of 65536 seconds in a rotated order, against
// [MQTT-4.6.0-1]. Created cannot simply be restamped: mochi's cap on a kept message's age
// counts from it, and stamps that are not the real seconds would misorder the next
// resume. So the node takes the messages out of the session before mochi resumes it
// (takeResend, in OnSessionEstablish), which leaves mochi nothing to resend, and puts them
// back and writes them itself, in the order they were queued, once mochi has answered the
// CONNECT (resend, in OnSessionEstablished). A CONNECT that ends before then gets them
// back in its session unsent (restoreResend, when the connection is done).
//
// The order within one second is the order of mochi's packet ids, which a session hands
// out in increasing order from where it last stopped. But each connection starts again
// from the lowest free id, so within the second of a resume, messages queued after it can
// hold lower ids than ones kept from before it and are resent first.

// resendWait bounds how long a CONNECT waits for the connection it takes over here to end
// before it takes that session's messages; past it mochi's order stands.
const resendWait = time.Second

// takeResend takes the messages out of the session that the CONNECT of cl resumes, in the
// order they were queued, and keeps them for resend. Only once the session's connection
// has ended: an acknowledgement could otherwise settle one that was taken.
func (n *Node) takeResend(cl *mqtt.Client, pk packets.Packet) {
	if pk.Connect.Clean {
		return // nothing is resumed
	}
	if st := n.clients.byClient(cl); st != nil && st.prev != nil {
		if !st.prev.keeps {
			// Its session ends with its connection: mochi resumes it only if it takes it
			// over first, so waiting for the connection's end would lose it.
			return
		}
		select {
		case <-st.prev.gone:
		case <-time.After(resendWait):
			n.log.Debug("resend order left to mochi: the connection taken over has not ended", "client", cl.ID)
			return
		}
	}
	old, ok := n.mqtt.Clients.Get(cl.ID)
	// Its properties are read after its connection's end, when a DISCONNECT can no longer
	// change them.
	if !ok || old == cl || !old.Closed() || !resumable(old) {
		return
	}
	var taken []packets.Packet
	for _, m := range queuedOrder(old.State.Inflight.GetAll(false)) {
		// Delete reports whether it took it: mochi's expiry sweep, which takes no lock of
		// ours, may have removed it first.
		if old.State.Inflight.Delete(m.PacketID) {
			taken = append(taken, m)
		}
	}
	if len(taken) > 0 {
		n.resendMu.Lock()
		n.resends[cl] = taken
		n.resendMu.Unlock()
	}
}

// resend puts the messages takeResend kept for cl back in its session and writes them,
// in their order, as mochi's own resend does (ResendInflightMessages): DUP set on the
// PUBLISHes [MQTT-3.3.1-1], and an acknowledgement of the client's QoS 1/2 publish
// forgotten once written. mochi has sent the CONNACK and resent none of them.
func (n *Node) resend(cl *mqtt.Client) {
	for _, m := range n.restoreResend(cl) {
		if m.FixedHeader.Type == packets.Publish {
			m.FixedHeader.Dup = true
		}
		if err := cl.WritePacket(m); err != nil {
			return // kept in the session for the next resume
		}
		if t := m.FixedHeader.Type; (t == packets.Puback || t == packets.Pubcomp) && cl.State.Inflight.Delete(m.PacketID) {
			atomic.AddInt64(&n.mqtt.Info.Inflight, -1)
		}
	}
}

// restoreResend puts the messages takeResend kept for cl back in its session and returns
// them (nil if it kept none).
func (n *Node) restoreResend(cl *mqtt.Client) []packets.Packet {
	n.resendMu.Lock()
	taken := n.resends[cl]
	delete(n.resends, cl)
	n.resendMu.Unlock()
	for _, m := range taken {
		cl.State.Inflight.Set(m)
	}
	return taken
}

// resumable reports whether cl's session outlives its connection (else mochi deletes it as
// the connection ends, and a CONNECT resumes nothing).
func resumable(cl *mqtt.Client) bool {
	p := &cl.Properties
	return !(p.ProtocolVersion == 5 && p.Props.SessionExpiryInterval == 0 || p.ProtocolVersion < 5 && p.Clean)
}

// queuedOrder sorts msgs in the order they were queued: by creation second and, within
// one second, by packet id from the widest gap in the ids of that second (mochi hands a
// session's ids out in increasing order from where it last stopped, wrapping after the
// highest), and returns them.
func queuedOrder(msgs []packets.Packet) []packets.Packet {
	slices.SortFunc(msgs, func(a, b packets.Packet) int {
		if c := cmp.Compare(a.Created, b.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.PacketID, b.PacketID)
	})
	for i := 0; i < len(msgs); {
		j := i + 1
		for j < len(msgs) && msgs[j].Created == msgs[i].Created {
			j++
		}
		rotateAfterWidestGap(msgs[i:j])
		i = j
	}
	return msgs
}

// rotateAfterWidestGap rotates run, sorted by packet id, so that it starts after the
// widest gap between consecutive ids, counting the gap that wraps from the highest id
// back to the lowest (which keeps run as it is when it is the widest).
func rotateAfterWidestGap(run []packets.Packet) {
	if len(run) < 2 {
		return
	}
	start, widest := 0, int(run[0].PacketID)+65535-int(run[len(run)-1].PacketID)
	for k := 1; k < len(run); k++ {
		if gap := int(run[k].PacketID) - int(run[k-1].PacketID); gap > widest {
			start, widest = k, gap
		}
	}
	slices.Reverse(run[:start])
	slices.Reverse(run[start:])
	slices.Reverse(run)
}
