package etcdcoord

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// watchLink follows the gRPC connection's state until the coordinator closes. Every change
// wakes the link's waiters: a lost connection makes registrations Suspended at once, without
// waiting for a keepalive to be overdue (they ask linkReady); a regained one bumps the
// generation, so that watchers re-list.
func (c *Coordinator) watchLink(conn *grpc.ClientConn) {
	ctx, cancel := notify.CancelOn(context.Background(), c.g.Closed(), nil)
	defer cancel()
	st := conn.GetState()
	var wasReady bool
	for {
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
		st = conn.GetState()
	}
}

// linkReady reports whether the connection is ready now. It asks the connection itself, not
// the watched state, which can lag a moment behind a call that just succeeded.
func (c *Coordinator) linkReady() bool {
	conn := c.cli.ActiveConnection()
	return conn == nil || conn.GetState() == connectivity.Ready
}
