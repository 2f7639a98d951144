// Package healthz is the document a node serves at /healthz: its readiness, the checks
// behind it and the running totals a monitor turns into rates. The node writes it; the
// monitor, the CLI's drain and the tests read it. It lives apart from the node so a reader
// does not link the broker to decode a JSON document.
package healthz

import (
	"encoding/json"
	"time"
)

// Report is a node's readiness report. A load balancer reads only the status code it is
// served with (200 ready, 503 not); the monitor reads the detail.
type Report struct {
	Ready bool   `json:"ready"`
	Node  string `json:"node"`
	// Instance is the node process's coord.Member.Instance, so that a reader can tell a
	// restarted process from the one a member entry names.
	Instance    string           `json:"instance,omitempty"`
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

// Served is a Report as a reader received it, with the HTTP status it was served with (the
// dashboard shows both; 200 and 503 both carry the report).
type Served struct {
	Status int `json:"status"` // the HTTP status: 200 in service, 503 not
	Report
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

func (r Report) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}
