package node

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/healthz"
)

// healthLoop refreshes the readiness checks every interval.
func (n *Node) healthLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.Health.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			n.checkHealth(ctx)
		case <-ctx.Done():
			return
		}
	}
}

// checkHealth runs the checks that need I/O (store, disk, memory, accept loop) and caches
// their outcome; Health combines it with the live state.
func (n *Node) checkHealth(ctx context.Context) {
	checks := map[string]healthz.Check{}

	sctx, cancel := context.WithTimeout(ctx, n.cfg.Health.StoreTimeout)
	start := time.Now()
	err := n.store.Ping(sctx)
	cancel()
	c := healthz.Check{OK: err == nil, Millis: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		c.Detail = err.Error()
	}
	checks["store"] = c

	var fs syscall.Statfs_t
	if err := syscall.Statfs(n.cfg.DataDir, &fs); err != nil {
		checks["disk"] = healthz.Check{OK: false, Detail: fmt.Sprintf("statfs %s: %v", n.cfg.DataDir, err)}
	} else {
		free := fs.Bavail * uint64(fs.Bsize)
		checks["disk"] = healthz.Check{OK: free >= n.cfg.Health.MinFreeDisk,
			Detail: fmt.Sprintf("%d MiB free on %s (minimum %d MiB)", free>>20, n.cfg.DataDir, n.cfg.Health.MinFreeDisk>>20)}
	}

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mem := healthz.Check{OK: true, Detail: fmt.Sprintf("heap %d MiB", ms.HeapAlloc>>20)}
	if limit := n.cfg.Health.MaxMemory; limit > 0 && ms.HeapAlloc > limit {
		mem = healthz.Check{OK: false, Detail: fmt.Sprintf("heap %d MiB over the limit %d MiB", ms.HeapAlloc>>20, limit>>20)}
	}
	checks["memory"] = mem

	accepting := n.mqttLis != nil && n.mqttLis.Accepting()
	checks["accept"] = healthz.Check{OK: accepting}
	if !accepting {
		checks["accept"] = healthz.Check{OK: false, Detail: "MQTT accept loop not running"}
	}
	for _, l := range n.sideLis {
		if accepting && !l.Accepting() {
			// A node whose WebSocket port stopped accepting is out of service as well: the
			// load balancer checks one /healthz for both ports.
			checks["accept"] = healthz.Check{OK: false, Detail: l.id + " accept loop not running"}
			break
		}
	}
	n.health.Store(&healthz.Report{Checks: checks, CheckedAt: time.Now().UTC()})
}

// Health returns the current readiness report.
func (n *Node) Health() healthz.Report {
	h := healthz.Report{}
	if cached := n.health.Load(); cached != nil {
		h = *cached
	}
	checks := make(map[string]healthz.Check, len(h.Checks)+1) // the cached map is shared: copy it
	for k, v := range h.Checks {
		checks[k] = v
	}
	h.Checks = checks
	h.Node, h.Instance = n.cfg.ID, n.instance
	h.Clients = n.clients.len()
	h.Ready = true
	for _, c := range h.Checks {
		h.Ready = h.Ready && c.OK
	}
	if n.reg != nil {
		st, _ := n.reg.Status()
		h.State, h.Epoch = st.State.String(), st.Epoch
		if st.Mark != nil {
			h.Quarantined, h.Reason = true, st.Mark.Reason
		}
		// Suspended (cut off from the coordinator, not fenced yet) still delivers, but
		// the load balancer should send new clients elsewhere: it may be fenced soon.
		h.Ready = h.Ready && st.State == coord.Registered
	}
	leaseOK := true
	if n.lease != nil {
		if ok, _ := n.lease.Check(); !ok {
			leaseOK = false
			h.Checks["lease"] = healthz.Check{OK: false, Detail: "delivery lease lapsed: the store has not been reachable for the lease's duration"}
			h.Ready = false
		}
	}
	if c, ok := h.Checks["store"]; ok && !c.OK {
		c.Status = healthz.StoreDown
		if leaseOK {
			c.Status = healthz.StoreDegraded
			c.Detail = "degraded: still delivering directly while the delivery lease holds; " + c.Detail
		}
		h.Checks["store"] = c
	}
	if g := n.gate.Load(); g != nil {
		h.Gate = g.reason
	}
	h.Ready = h.Ready && h.Gate == "" && !h.Quarantined
	if n.mqtt != nil {
		h.Counters.MessagesIn = atomic.LoadInt64(&n.mqtt.Info.MessagesReceived)
		h.Counters.MessagesOut = atomic.LoadInt64(&n.mqtt.Info.MessagesSent)
	}
	h.Counters.DeliveriesOK, h.Counters.DeliveryFailures = n.metrics.deliveryTotals()
	return h
}
