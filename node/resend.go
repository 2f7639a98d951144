package node

import (
	"cmp"
	"slices"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A resumed session's unacknowledged messages are resent by mochi in the order of
// uint16(Created): their creation second truncated to 16 bits, sorted with an unstable
// sort over a map. So the messages of one second came back in any order, and a session
// whose messages span a multiple of 65536 seconds in a rotated order, against
// [MQTT-4.6.0-1]. Before mochi takes the session over (orderResend, in
// OnSessionEstablish), the node ranks the messages in the order they were queued and
// stamps each with its rank as Created, which is what the resend sorts by; once mochi has
// resent them, before the connection reads anything (unstamp, as OnSessionEstablished
// releases what the CONNECT holds), it puts their real Created back. The messages never
// leave the session, so their packet ids stay taken, and Created is off only in between:
// mochi's cap on a kept message's age counts from it, and the next resume orders by it.
// The stamps are later than the real times, so the cap cannot drop a message early
// meanwhile.
//
// The order within one second is the order of mochi's packet ids, which a session hands
// out in increasing order from where it last stopped. But each connection starts again
// from the lowest free id, so within the second of a resume, messages queued after it can
// hold lower ids than ones kept from before it and are resent first.

// resendWait bounds how long a CONNECT waits for the connection it takes over here to end
// before it orders that session's messages; past it mochi's order stands.
const resendWait = time.Second

// stamp is a kept message's real Created and the rank it was stamped with.
type stamp struct{ real, rank int64 }

// orderResend stamps the messages of the session that the CONNECT of cl resumes with
// their ranks, and records the stamps with what the CONNECT holds (connectHold). Only once
// the session's connection has ended: an acknowledgement could otherwise remove a message
// between the read and the stamp, which would put it back.
func (n *Node) orderResend(cl *mqtt.Client, pk packets.Packet) {
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
	now, maxAge := time.Now().Unix(), int64(n.cfg.Limits.MaxMessageExpiry/time.Second)
	msgs := queuedOrder(old.State.Inflight.GetAll(false), now, maxAge)
	if len(msgs) == 0 {
		return
	}
	// Ranks in one 65536-second window (so that their low 16 bits increase), after every
	// real Created: the window after the latest.
	var latest int64
	for _, m := range msgs {
		latest = max(latest, m.Created)
	}
	base := (latest>>16 + 1) << 16
	stamps := map[uint16]stamp{}
	for i, m := range msgs {
		// Only if it is still as it was read: mochi's expiry sweep, which takes no lock of
		// ours, may have removed it (putting it back would resend an expired message and
		// unbalance mochi's counts), or a publisher updated it.
		cur, ok := old.State.Inflight.Get(m.PacketID)
		if !ok || cur.Created != m.Created || cur.Expiry != m.Expiry || cur.FixedHeader.Type != m.FixedHeader.Type {
			continue
		}
		s := stamp{real: cur.Created, rank: base + int64(i)}
		cur.Created = s.rank
		old.State.Inflight.Set(cur)
		stamps[m.PacketID] = s
	}
	n.connMu.Lock()
	if h := n.connecting[cl]; h != nil { // it is: the CONNECT holds its lock
		h.stamps = stamps
	}
	n.connMu.Unlock()
}

// unstamp puts back the real Created of the messages orderResend stamped for cl's
// CONNECT, wherever they are now: in cl's session once mochi took it over (it copies the
// messages), else still in the old one. unlockConnect calls it before the connection reads
// its first packet (or after it ended), so no acknowledgement can remove one meanwhile.
func (n *Node) unstamp(cl *mqtt.Client, stamps map[uint16]stamp) {
	if len(stamps) == 0 {
		return
	}
	holders := []*mqtt.Client{cl}
	if old, ok := n.mqtt.Clients.Get(cl.ID); ok && old != cl {
		holders = append(holders, old)
	}
	now := time.Now().Unix()
	for _, h := range holders {
		for id, s := range stamps {
			cur, ok := h.State.Inflight.Get(id)
			// One that expires by the next second is left stamped: mochi's sweep may be
			// removing it (and the stamp only matters to a message kept longer).
			if !ok || cur.Created != s.rank || cur.Expiry > 0 && cur.Expiry <= now+1 {
				continue
			}
			cur.Created = s.real
			h.State.Inflight.Set(cur)
		}
	}
}

// resumable reports whether cl's session outlives its connection (else mochi deletes it as
// the connection ends, and a CONNECT resumes nothing).
func resumable(cl *mqtt.Client) bool {
	p := &cl.Properties
	return !(p.ProtocolVersion == 5 && p.Props.SessionExpiryInterval == 0 || p.ProtocolVersion < 5 && p.Clean)
}

// queuedOrder returns the messages of msgs in the order they were queued: by creation
// second and, within one second, by packet id from the widest gap in the ids of that
// second (mochi hands a session's ids out in increasing order from where it last stopped,
// wrapping after the highest). Messages that expire, or reach mochi's cap of maxAge
// seconds, by the next second are left out: mochi's sweep may be removing them.
func queuedOrder(msgs []packets.Packet, now, maxAge int64) []packets.Packet {
	msgs = slices.DeleteFunc(msgs, func(m packets.Packet) bool {
		return m.Expiry > 0 && m.Expiry <= now+1 || maxAge > 0 && now+1-m.Created > maxAge
	})
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
