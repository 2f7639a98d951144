package etcdcoord

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// watchLink follows the connection's state until Close, waking linkGen's waiters at every
// change: a lost link makes registrations Suspended at once, not once a keepalive is overdue
// (they ask linkReady); a regained one bumps the generation, so that watchers list again.
func (c *Coordinator) watchLink(conn *grpc.ClientConn) {
	ctx, cancel := notify.CancelOn(context.Background(), c.g.Closed(), nil)
	defer cancel()
	var wasReady bool
	for st := conn.GetState(); ; st = conn.GetState() {
		ready := st == connectivity.Ready
		c.linkGen.Update(func(gen uint64) uint64 {
			if ready && !wasReady {
				gen++
			}
			return gen
		})
		wasReady = ready
		if !conn.WaitForStateChange(ctx, st) {
			return
		}
	}
}

// linkReady reports whether the connection is ready now, asking it, not the watched state,
// which can lag a moment behind a call that just succeeded.
func (c *Coordinator) linkReady() bool {
	conn := c.cli.ActiveConnection()
	return conn == nil || conn.GetState() == connectivity.Ready
}
