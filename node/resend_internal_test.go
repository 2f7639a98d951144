package node

import (
	"slices"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestQueuedOrder: the messages of a session are put in the order they were queued: by
// creation second, and within one second by packet id from where mochi's ids wrapped;
// expired ones are left out; the stamps end before now and sort as mochi sorts them
// (their low 16 bits increase), even when now's low 16 bits are smaller than their count.
func TestQueuedOrder(t *testing.T) {
	msg := func(id uint16, created int64) packets.Packet {
		return packets.Packet{PacketID: id, Created: created}
	}
	for _, tc := range []struct {
		name string
		now  int64
		in   []packets.Packet
		want []uint16
	}{
		{"one second, shuffled", 1_000_000, []packets.Packet{msg(8, 500), msg(5, 500), msg(9, 500), msg(6, 500), msg(7, 500)}, []uint16{5, 6, 7, 8, 9}},
		{"one second across the id wrap", 1_000_000, []packets.Packet{msg(1, 500), msg(65534, 500), msg(2, 500), msg(65535, 500), msg(65533, 500)}, []uint16{65533, 65534, 65535, 1, 2}},
		{"gaps from acknowledged ids", 1_000_000, []packets.Packet{msg(40, 500), msg(10, 500), msg(12, 500), msg(20, 500)}, []uint16{10, 12, 20, 40}},
		{"seconds first", 1_000_000, []packets.Packet{msg(7, 101), msg(65000, 100), msg(8, 101), msg(3, 99)}, []uint16{3, 65000, 7, 8}},
		{"now's low bits below the count", 65536*20 + 2, []packets.Packet{msg(1, 5), msg(2, 5), msg(3, 5), msg(4, 5), msg(5, 5)}, []uint16{1, 2, 3, 4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			in = append(in, packets.Packet{PacketID: 999, Created: 500, Expiry: tc.now - 1}) // expired
			got := queuedOrder(in, tc.now)
			var ids []uint16
			for _, m := range got {
				ids = append(ids, m.PacketID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("order %v, want %v", ids, tc.want)
			}
			for i := range got {
				if got[i].Created >= tc.now {
					t.Fatalf("stamp %d not before now %d", got[i].Created, tc.now)
				}
				if i > 0 && (got[i].Created <= got[i-1].Created || uint16(got[i].Created) <= uint16(got[i-1].Created)) {
					t.Fatalf("stamps %d then %d: mochi's sort by their low 16 bits would not keep the order", got[i-1].Created, got[i].Created)
				}
			}
		})
	}
}
