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
// older than 18 hours could be resent in a rotated order, against [MQTT-4.6.0-1]. Before
// mochi takes the session over, the node ranks them in the order they were queued and
// stamps each with its rank as Created, which is all the resend sorts by (mochi reads it
// nowhere else; expiry has its own field).

// resendWait bounds how long a CONNECT waits for the connection it takes over here to end
// before it orders that session's messages; past it mochi's order stands.
const resendWait = time.Second

// orderResend puts the messages of the session that the CONNECT of cl resumes in the order
// they were queued. It runs in OnSessionEstablish, before mochi takes the session over, and
// only once the session's connection has ended: an acknowledgement could otherwise remove a
// message between the read and the stamp, which would put it back.
func (n *Node) orderResend(cl *mqtt.Client, pk packets.Packet) {
	if pk.Connect.Clean {
		return // nothing is resumed
	}
	if st := n.clients.byClient(cl); st != nil && st.prevGone != nil {
		select {
		case <-st.prevGone:
		case <-time.After(resendWait):
			n.log.Debug("resend order left to mochi: the connection taken over has not ended", "client", cl.ID)
			return
		}
	}
	old, ok := n.mqtt.Clients.Get(cl.ID)
	if !ok || old == cl || !old.Closed() {
		return
	}
	if p := &old.Properties; p.ProtocolVersion == 5 && p.Props.SessionExpiryInterval == 0 || p.ProtocolVersion < 5 && p.Clean {
		return // mochi deletes that session as its connection ends: nothing to resume
	}
	now := time.Now().Unix() // before the read: messages queued from here on are created at now or later
	for _, m := range queuedOrder(old.State.Inflight.GetAll(false), now) {
		old.State.Inflight.Set(m)
	}
}

// queuedOrder returns the unexpired messages of msgs in the order they were queued,
// each stamped with its rank as Created: increasing values that end at now-1 and whose
// low 16 bits increase too (what mochi sorts by), so that a message queued at now or later
// sorts after them. (When now's low 16 bits are below their count, they end at the last
// second before those bits wrapped instead, and a message queued meanwhile sorts first.) The order is by creation second and, within one second, by packet id
// from the widest gap in the ids of that second: mochi hands a session's ids out in
// increasing order from where it last stopped, wrapping after the highest.
func queuedOrder(msgs []packets.Packet, now int64) []packets.Packet {
	msgs = slices.DeleteFunc(msgs, func(m packets.Packet) bool { return m.Expiry > 0 && m.Expiry < now })
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
	end := now - 1
	if k := int64(len(msgs)); int64(uint16(end)) < k-1 {
		end -= int64(uint16(end)) + 1 // the end of the previous 65536 seconds: no wrap
	}
	for i := range msgs {
		msgs[i].Created = end - int64(len(msgs)-1-i)
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
