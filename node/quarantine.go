package node

import (
	"context"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// quarantine carries out the node's own quarantine in the order that loses no client: first
// out of the load balancer (healthz 503, new connections refused), then, after the grace
// period, out of the live set (the entry withdrawn); the process keeps running so an
// operator can look at it.
type quarantine struct {
	mu     sync.Mutex
	active bool
	cancel context.CancelFunc
	done   chan struct{}
	out    chan struct{} // closed once the node is out of the live set: the grace is over
}

// begin starts leaving service, once per mark. live says whether the node is in the live
// set (and so, possibly, in the load balancer): only then does it wait the grace period.
// A node that finds the mark as it registers again (fenced while frozen, say) is out of
// both already, and its clients are moved off at once: waiting would leave them on a node
// nobody routes to.
func (q *quarantine) begin(ctx context.Context, n *Node, mark *coord.Quarantine, live bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.active {
		q.active = true
		qctx, cancel := context.WithCancel(ctx)
		q.cancel, q.done, q.out = cancel, make(chan struct{}), make(chan struct{})
		if live {
			n.log.Warn("quarantined: refusing new connections, healthz 503; leaving the live set after the grace period",
				"reason", mark.Reason, "by", mark.By, "grace", n.cfg.Quarantine.Grace)
		}
		done, out := q.done, q.out
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer close(done)
			n.leaveService(qctx, out)
		}()
	}
	if !live {
		select {
		case <-q.out:
		default:
			close(q.out)
			n.log.Warn("quarantined while out of the live set: refusing new connections, healthz 503, moving clients off now",
				"reason", mark.Reason, "by", mark.By)
		}
	}
}

// end stops leaving service (the mark was released, or the node is stopping).
func (q *quarantine) end(n *Node) {
	q.mu.Lock()
	if !q.active {
		q.mu.Unlock()
		return
	}
	q.active = false
	cancel, done := q.cancel, q.done
	q.mu.Unlock()
	cancel()
	<-done
	n.withdrawn.Store(false)
	if !n.stopping.Load() {
		n.log.Info("quarantine released: open again")
	}
}

// leaveService waits the load-balancer grace (cut short once out is closed), withdraws from the live set and moves the
// clients off at a bounded rate.
func (n *Node) leaveService(ctx context.Context, out <-chan struct{}) {
	t := time.NewTimer(n.cfg.Quarantine.Grace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-out:
	case <-ctx.Done():
		return
	}
	// Stop delivering before the entry goes: once it has gone, others judge this epoch
	// left and stop telling the node about its clients (package lease).
	n.withdraw()
	for {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := n.reg.Withdraw(wctx)
		cancel()
		if err == nil {
			break
		}
		n.log.Warn("quarantine: withdraw from the live set failed; retrying", "error", err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return
		}
	}
	n.log.Warn("quarantine: left the live set; moving clients off", "clients", n.clients.len(),
		"rate_per_second", n.cfg.Quarantine.MoveRate)
	n.moveAllOff(ctx)
}

// moveOff disconnects one client so it reconnects elsewhere: MQTT 5 clients get
// DISCONNECT 0x9C (use another server) with a server reference; 3.1.1 has no such packet,
// so the connection is closed.
func (n *Node) moveOff(st *clientState) {
	cl := st.cl
	if cl.Properties.ProtocolVersion == 5 {
		props := packets.Properties{ReasonString: packets.ErrUseAnotherServer.Reason}
		if ref := n.otherServer(); ref != "" {
			props.ServerReference = ref
		}
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Disconnect},
			ReasonCode:  packets.ErrUseAnotherServer.Code,
			Properties:  props,
		})
	}
	cl.Stop(packets.ErrUseAnotherServer)
	n.metrics.movedOff.Inc()
}
