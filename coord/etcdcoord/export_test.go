package etcdcoord

import (
	"context"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// SessionTTL is the lease TTL asked for (SessionTimeout), rounded up to whole seconds.
func (c *Coordinator) SessionTTL() time.Duration { return c.ttl }

// StaleFence returns a leadership that still looks held locally but whose fence names a
// create revision the leader key does not have, so that tests reach the server-side check
// of a fenced write rather than the local short cut for a leadership already given up.
func StaleFence(l coord.Leadership) coord.Leadership {
	b, _ := coord.FenceOf(l, func(*ballot) bool { return true })
	return staleFence{&ballot{c: b.c, key: b.key, rev: b.rev + 1}}
}

type staleFence struct{ b *ballot }

func (staleFence) Done() <-chan struct{}        { return nil } // never closed
func (staleFence) Resign(context.Context) error { return nil }
func (f staleFence) Ballot() coord.Ballot       { return f.b }

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
