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
// [MQTT-4.6.0-1]. Before mochi takes the session over, the node ranks them in the order
// they were queued and moves each Created just far enough forward that the resend's sort
// keeps that order. Never backward: mochi's cap on how long a message is kept
// (MaximumMessageExpiryInterval, in ClearExpiredInflights) counts from Created, and a
// message made to look older would be dropped early.

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
	old, ok := n.mqtt.Clients.Get(cl.ID)
	if !ok || old == cl || !resumable(old) {
		return
	}
	if st := n.clients.byClient(cl); st != nil && st.prevGone != nil {
		select {
		case <-st.prevGone:
		case <-time.After(resendWait):
			n.log.Debug("resend order left to mochi: the connection taken over has not ended", "client", cl.ID)
			return
		}
	}
	if !old.Closed() {
		return
	}
	now, maxAge := time.Now().Unix(), int64(n.cfg.Limits.MaxMessageExpiry/time.Second)
	msgs, stamps := queuedOrder(old.State.Inflight.GetAll(false), now, maxAge)
	for i, m := range msgs {
		// Only if it is still as it was read: mochi's expiry sweep, which takes no lock of
		// ours, may have removed it (putting it back would resend an expired message and
		// unbalance mochi's counts), or a publisher updated it.
		cur, ok := old.State.Inflight.Get(m.PacketID)
		if !ok || cur.Created != m.Created || cur.Expiry != m.Expiry || cur.FixedHeader.Type != m.FixedHeader.Type {
			continue
		}
		cur.Created = stamps[i]
		old.State.Inflight.Set(cur)
	}
}

// resumable reports whether cl's session outlives its connection (else mochi deletes it as
// the connection ends, and a CONNECT resumes nothing).
func resumable(cl *mqtt.Client) bool {
	p := &cl.Properties
	return !(p.ProtocolVersion == 5 && p.Props.SessionExpiryInterval == 0 || p.ProtocolVersion < 5 && p.Clean)
}

// queuedOrder returns msgs in the order they were queued, with the Created each must get
// for mochi's resend to keep that order: increasing, with increasing low 16 bits (what the
// resend sorts by), each at least the message's own Created and no further from it than
// that needs. The order is by creation second and, within one second, by packet id from
// the widest gap in the ids of that second: mochi hands a session's ids out in increasing
// order from where it last stopped, wrapping after the highest. Messages that expire, or
// reach mochi's cap of maxAge seconds, by the next second are left out: mochi's sweep may
// be removing them.
func queuedOrder(msgs []packets.Packet, now, maxAge int64) ([]packets.Packet, []int64) {
	msgs = slices.DeleteFunc(msgs, func(m packets.Packet) bool {
		return m.Expiry > 0 && m.Expiry <= now+1 || maxAge > 0 && now+1-m.Created > maxAge
	})
	if len(msgs) == 0 {
		return nil, nil
	}
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
	// The stamps must share their high bits, or the low ones would wrap: start in the
	// oldest message's 65536-second window and move to the next while one does not fit.
	stamps := make([]int64, len(msgs))
	for window := msgs[0].Created >> 16; ; window++ {
		prev, fits := window<<16-1, true
		for i, m := range msgs {
			stamps[i] = max(m.Created, prev+1)
			if stamps[i]>>16 != window {
				fits = false
				break
			}
			prev = stamps[i]
		}
		if fits {
			return msgs, stamps
		}
	}
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
