package node

import (
	"slices"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestQueuedOrder: the messages of a session are put in the order they were queued: by
// creation second, and within one second by packet id from where mochi's ids wrapped
// (the widest gap in that second's ids); those about to expire, or to reach mochi's age
// cap, are left out.
func TestQueuedOrder(t *testing.T) {
	msg := func(id uint16, created int64) packets.Packet {
		return packets.Packet{PacketID: id, Created: created}
	}
	for _, tc := range []struct {
		name string
		in   []packets.Packet
		want []uint16
	}{
		{"one second, shuffled", []packets.Packet{msg(8, 500), msg(5, 500), msg(9, 500), msg(6, 500), msg(7, 500)}, []uint16{5, 6, 7, 8, 9}},
		{"one second across the id wrap", []packets.Packet{msg(1, 500), msg(65534, 500), msg(2, 500), msg(65535, 500), msg(65533, 500)},
			[]uint16{65533, 65534, 65535, 1, 2}},
		{"gaps from acknowledged ids", []packets.Packet{msg(40, 500), msg(10, 500), msg(12, 500), msg(20, 500)}, []uint16{10, 12, 20, 40}},
		{"seconds first", []packets.Packet{msg(7, 501), msg(65000, 500), msg(8, 501), msg(3, 499)}, []uint16{3, 65000, 7, 8}},
		{"across a multiple of 65536 seconds", []packets.Packet{msg(2, 65537), msg(1, 65535)}, []uint16{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const now, maxAge = 600, 3600
			in := append(slices.Clone(tc.in),
				packets.Packet{PacketID: 999, Created: 500, Expiry: now + 1}, // expires by the next second
				packets.Packet{PacketID: 998, Created: now - maxAge},         // at the cap by the next second
			)
			var ids []uint16
			for _, m := range queuedOrder(in, now, maxAge) {
				ids = append(ids, m.PacketID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("order %v, want %v", ids, tc.want)
			}
		})
	}
}
