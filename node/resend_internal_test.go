package node

import (
	"slices"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestQueuedOrder: the messages of a session are put in the order they were queued: by
// creation second, and within one second by packet id from where mochi's ids wrapped.
// Their stamps sort as mochi sorts them (their low 16 bits increase), are never earlier
// than their own Created (mochi's cap on a message's age counts from it) and no later
// than the order needs; messages about to expire, or to reach the cap, are left out.
func TestQueuedOrder(t *testing.T) {
	msg := func(id uint16, created int64) packets.Packet {
		return packets.Packet{PacketID: id, Created: created}
	}
	const now, maxAge = 1_000_000, 86_400
	for _, tc := range []struct {
		name   string
		in     []packets.Packet
		want   []uint16
		stamps []int64
	}{
		{"one second, shuffled", []packets.Packet{msg(8, 999_990), msg(5, 999_990), msg(9, 999_990), msg(6, 999_990), msg(7, 999_990)},
			[]uint16{5, 6, 7, 8, 9}, []int64{999_990, 999_991, 999_992, 999_993, 999_994}},
		{"one second across the id wrap", []packets.Packet{msg(1, 999_990), msg(65534, 999_990), msg(2, 999_990), msg(65535, 999_990), msg(65533, 999_990)},
			[]uint16{65533, 65534, 65535, 1, 2}, []int64{999_990, 999_991, 999_992, 999_993, 999_994}},
		{"gaps from acknowledged ids", []packets.Packet{msg(40, 999_990), msg(10, 999_990), msg(12, 999_990), msg(20, 999_990)},
			[]uint16{10, 12, 20, 40}, []int64{999_990, 999_991, 999_992, 999_993}},
		{"seconds first, kept where there is room", []packets.Packet{msg(7, 999_950), msg(65000, 999_900), msg(8, 999_950), msg(3, 999_800)},
			[]uint16{3, 65000, 7, 8}, []int64{999_800, 999_900, 999_950, 999_951}},
		{"across a multiple of 65536 seconds", []packets.Packet{msg(2, 983_041), msg(1, 983_039)}, // 983040 = 15 × 65536
			[]uint16{1, 2}, []int64{983_040, 983_041}},
		{"this second's burst", []packets.Packet{msg(3, now), msg(1, now), msg(2, now)},
			[]uint16{1, 2, 3}, []int64{now, now + 1, now + 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			in = append(in,
				packets.Packet{PacketID: 999, Created: 999_990, Expiry: now + 1}, // expires by the next second
				packets.Packet{PacketID: 998, Created: now - maxAge},             // at the cap by the next second
			)
			got, stamps := queuedOrder(in, now, maxAge)
			var ids []uint16
			for _, m := range got {
				ids = append(ids, m.PacketID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("order %v, want %v", ids, tc.want)
			}
			if !slices.Equal(stamps, tc.stamps) {
				t.Fatalf("stamps %v, want %v", stamps, tc.stamps)
			}
			for i := range got {
				if stamps[i] < got[i].Created {
					t.Fatalf("stamp %d earlier than the message's Created %d", stamps[i], got[i].Created)
				}
				if i > 0 && uint16(stamps[i]) <= uint16(stamps[i-1]) {
					t.Fatalf("stamps %d then %d: mochi's sort by their low 16 bits would not keep the order", stamps[i-1], stamps[i])
				}
			}
		})
	}
}
