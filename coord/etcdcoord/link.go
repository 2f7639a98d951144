package etcdcoord

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// link is what the coordinator knows about its connection to the cluster.
type link struct {
	ready bool
	gen   uint64 // bumped every time the connection becomes ready, so watchers re-list
}

// watchLink follows the gRPC connection's state until the coordinator closes. A lost
// connection makes registrations Suspended at once, without waiting for a keepalive to be
// overdue; a regained one makes watchers re-list.
func (c *Coordinator) watchLink(conn *grpc.ClientConn) {
	ctx, cancel := c.bind(context.Background(), nil)
	defer cancel()
	st := conn.GetState()
	for {
		ready := st == connectivity.Ready
		c.link.Update(func(l link) link {
			if ready && !l.ready {
				l.gen++
			}
			l.ready = ready
			return l
		})
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
