package node

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// Health is the node's readiness report, served at /healthz. The load balancer reads only
// the status code (200 ready, 503 not); the monitor reads the detail.
type Health struct {
	Ready       bool             `json:"ready"`
	Node        string           `json:"node"`
	State       string           `json:"state"` // registration state
	Epoch       int64            `json:"epoch"`
	Gate        string           `json:"gate,omitempty"` // why new connections are refused
	Quarantined bool             `json:"quarantined"`
	Reason      string           `json:"reason,omitempty"` // quarantine reason
	Clients     int              `json:"clients"`
	Checks      map[string]Check `json:"checks"`
	Counters    Counters         `json:"counters"`
	CheckedAt   time.Time        `json:"checked_at"`
}

// Check is one readiness check's outcome.
type Check struct {
	OK     bool    `json:"ok"`
	Detail string  `json:"detail,omitempty"`
	Millis float64 `json:"ms,omitempty"`
	// Status qualifies a failed store check: "degraded" while the node still holds its
	// delivery lease and so still delivers to its clients directly (store calls fail: new
	// connections and queueing do not work), "down" once the lease has lapsed too.
	Status string `json:"status,omitempty"`
}

// Store check statuses.
const (
	StoreDegraded = "degraded"
	StoreDown     = "down"
)

// Counters are running totals the monitor turns into rates.
type Counters struct {
	MessagesIn       int64 `json:"messages_in"`
	MessagesOut      int64 `json:"messages_out"`
	DeliveriesOK     int64 `json:"deliveries_ok"`
	DeliveryFailures int64 `json:"delivery_failures"`
}

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
	checks := map[string]Check{}

	sctx, cancel := context.WithTimeout(ctx, n.cfg.Health.StoreTimeout)
	start := time.Now()
	err := n.store.Ping(sctx)
	cancel()
	c := Check{OK: err == nil, Millis: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		c.Detail = err.Error()
	}
	checks["store"] = c

	var fs syscall.Statfs_t
	if err := syscall.Statfs(n.cfg.DataDir, &fs); err != nil {
		checks["disk"] = Check{OK: false, Detail: fmt.Sprintf("statfs %s: %v", n.cfg.DataDir, err)}
	} else {
		free := fs.Bavail * uint64(fs.Bsize)
		checks["disk"] = Check{OK: free >= n.cfg.Health.MinFreeDisk,
			Detail: fmt.Sprintf("%d MiB free on %s (minimum %d MiB)", free>>20, n.cfg.DataDir, n.cfg.Health.MinFreeDisk>>20)}
	}

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mem := Check{OK: true, Detail: fmt.Sprintf("heap %d MiB", ms.HeapAlloc>>20)}
	if limit := n.cfg.Health.MaxMemory; limit > 0 && ms.HeapAlloc > limit {
		mem = Check{OK: false, Detail: fmt.Sprintf("heap %d MiB over the limit %d MiB", ms.HeapAlloc>>20, limit>>20)}
	}
	checks["memory"] = mem

	accepting := n.mqttLis != nil && n.mqttLis.Accepting()
	checks["accept"] = Check{OK: accepting}
	if !accepting {
		checks["accept"] = Check{OK: false, Detail: "MQTT accept loop not running"}
	}
	for _, l := range n.sideLis {
		if accepting && !l.Accepting() {
			// A node whose WebSocket port stopped accepting is out of service as well: the
			// load balancer checks one /healthz for both ports.
			checks["accept"] = Check{OK: false, Detail: l.id + " accept loop not running"}
			break
		}
	}
	n.health.Store(&Health{Checks: checks, CheckedAt: time.Now().UTC()})
}

// Health returns the current readiness report.
func (n *Node) Health() Health {
	h := Health{}
	if cached := n.health.Load(); cached != nil {
		h = *cached
	}
	checks := make(map[string]Check, len(h.Checks)+1) // the cached map is shared: copy it
	for k, v := range h.Checks {
		checks[k] = v
	}
	h.Checks = checks
	h.Node = n.cfg.ID
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
			h.Checks["lease"] = Check{OK: false, Detail: "delivery lease lapsed: the store has not been reachable for the lease's duration"}
			h.Ready = false
		}
	}
	if c, ok := h.Checks["store"]; ok && !c.OK {
		c.Status = StoreDown
		if leaseOK {
			c.Status = StoreDegraded
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

func (h Health) String() string {
	b, _ := json.Marshal(h)
	return string(b)
}
