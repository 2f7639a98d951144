package etcdcoord

import (
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// StaleFence returns a leadership that still looks held locally but whose fence names a
// create revision the leader key does not have, so that tests reach the server-side check
// of a fenced write rather than the local short cut for a leadership already given up.
func StaleFence(l coord.Leadership) coord.Leadership {
	ll := l.(*leadership)
	// A zero Held's Done is nil: never closed.
	return &leadership{Held: new(coord.Held), c: ll.c, key: ll.key, rev: ll.rev + 1}
}

// LeaseAcks returns, for every lease c holds, the send time of the latest request the server
// answered for it.
func LeaseAcks(c *Coordinator) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var acks []time.Time
	for k := range c.leases {
		acks = append(acks, k.p.Load().Heard)
	}
	return acks
}
