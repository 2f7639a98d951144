package node

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchboard-mqtt/switchboard/wire"
)

// metrics are the node's Prometheus metrics, registered on the node's own registry (several
// nodes can run in one process under `switchboard up`).
type metrics struct {
	connections     *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	deliverySeconds prometheus.Histogram
	takeovers       *prometheus.CounterVec
	panics          prometheus.Counter
	dropsKept       prometheus.Counter
	dropsLost       prometheus.Counter
	regState        prometheus.Gauge
	movedOff        prometheus.Counter
	limits          *prometheus.CounterVec
	authFailures    *prometheus.CounterVec
	aclDenied       *prometheus.CounterVec
	tooLarge        prometheus.Counter
	authRevoked     prometheus.Counter
	removeFailures  prometheus.Counter
	receiptFailures prometheus.Counter
	auditFixes      *prometheus.CounterVec

	okTotal, failTotal atomic.Int64 // for the readiness report's counters
}

func newMetrics(reg *prometheus.Registry, n *Node) *metrics {
	m := &metrics{
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_node_connections_total",
			Help: "MQTT connection attempts by result (accepted, refused_<reason>).",
		}, []string{"result"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_node_deliveries_total",
			Help: "Directed messages settled, by path (direct from a router, drain from a mailbox) and status.",
		}, []string{"path", "status"}),
		deliverySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_node_delivery_seconds",
			Help:    "Time from a routed message's arrival to the client's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		takeovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_node_takeovers_total",
			Help: "Session takeovers: remote (this node took a session from another), kicked/revoked (another node took one from this, told directly or through a notice), local (on this node), reassert (found taken over after a new epoch).",
		}, []string{"kind"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_node_panics_recovered_total",
			Help: "Panics recovered while handling one client's packets (that client was disconnected).",
		}),
		dropsKept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_node_dropped_messages_kept_total",
			Help: "QoS>0 messages the broker dropped for a slow subscriber that went to its mailbox instead.",
		}),
		dropsLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_node_dropped_messages_lost_total",
			Help: "QoS>0 messages dropped for a slow subscriber that could not be stored.",
		}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_node_auth_failures_total",
			Help: "Refused MQTT authentications by reason (bad_credentials, client_id_not_allowed, anonymous).",
		}, []string{"reason"}),
		aclDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_node_acl_denied_total",
			Help: "Subscriptions and publishes the ACL refused.",
		}, []string{"action"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_node_limit_refusals_total",
			Help: "Connections ended by a limit: packet_size, max_clients, receive_maximum, conn_rate, inflight; subscriptions refused over a session's limits: subscriptions; before authentication connect_timeout, connect_size, pending_connects, pending_connects_per_ip, auth_busy, auth_failures.",
		}, []string{"limit"}),
		movedOff: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_node_clients_moved_off_total",
			Help: "Clients disconnected so they reconnect elsewhere (quarantine).",
		}),
		authRevoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_node_sessions_revoked_total",
			Help: "Sessions ended because a reload of the credentials no longer admits them (user removed, password changed, token revoked).",
		}),
		tooLarge: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_node_directed_too_large_total",
			Help: "Directed messages dropped because they exceed the client's maximum packet size.",
		}),
		auditFixes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_node_presence_audit_fixes_total",
			Help: "Presences the periodic audit found wrong, by what it did: recorded_again (the store had lost it), taken_over (another session owned it), offline_discarded (an offline session whose client is connected on another node).",
		}, []string{"fix"}),
		removeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_node_mailbox_remove_failures_total",
			Help: "Failed deletions of acknowledged messages' mailbox copies (each costs a duplicate later).",
		}),
		receiptFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_node_receipt_failures_total",
			Help: "Failed writes of delivery receipts (retried; their messages wait unsettled meanwhile).",
		}),
		regState: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_node_registration_state",
			Help: "Registration state: 0 registering, 1 registered, 2 suspended, 3 fenced, 4 quarantined, 5 closed.",
		}),
	}
	info := func(name, help string, v func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v()) })
	}
	reg.MustRegister(
		m.connections, m.deliveries, m.deliverySeconds, m.takeovers, m.panics, m.dropsKept, m.dropsLost, m.regState, m.movedOff, m.limits, m.authFailures, m.aclDenied, m.tooLarge, m.removeFailures, m.receiptFailures, m.auditFixes, m.authRevoked,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_node_clients_connected", Help: "Connected MQTT clients.",
		}, func() float64 { return float64(n.clients.len()) }),
		info("switchboard_node_mqtt_messages_received_total", "PUBLISH packets received from clients.",
			func() int64 { return atomic.LoadInt64(&n.mqtt.Info.MessagesReceived) }),
		info("switchboard_node_mqtt_messages_sent_total", "PUBLISH packets sent to clients.",
			func() int64 { return atomic.LoadInt64(&n.mqtt.Info.MessagesSent) }),
		info("switchboard_node_mqtt_messages_dropped_total", "Pub/sub messages the broker dropped because a subscriber's outbound queue was full (QoS>0 ones go to its mailbox).",
			func() int64 { return atomic.LoadInt64(&n.mqtt.Info.MessagesDropped) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_node_mqtt_inflight", Help: "Pub/sub QoS 1/2 messages the broker holds unacknowledged, those kept for offline sessions included.",
		}, func() float64 { return float64(atomic.LoadInt64(&n.mqtt.Info.Inflight)) }),
		info("switchboard_node_mqtt_inflight_dropped_total", "Pub/sub messages the broker dropped because a subscriber held max-inflight unacknowledged messages (no hook: not kept).",
			func() int64 { return atomic.LoadInt64(&n.mqtt.Info.InflightDropped) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, fix := range []string{"recorded_again", "taken_over", "offline_discarded"} {
		m.auditFixes.WithLabelValues(fix) // at zero from the start, so rate() sees the first
	}
	registerStateMetrics(reg, n) // readiness, quarantine, lease, certificate expiry (statemetrics.go)
	return m
}

// countDelivery counts one directed message's outcome.
func (m *metrics) countDelivery(path string, s wire.Status) {
	m.deliveries.WithLabelValues(path, s.String()).Inc()
	switch s {
	case wire.StatusDelivered:
		m.okTotal.Add(1)
	case wire.StatusFailed:
		m.failTotal.Add(1)
	}
}

// deliveryTotals sums delivered and failed deliveries over both paths.
func (m *metrics) deliveryTotals() (ok, failed int64) { return m.okTotal.Load(), m.failTotal.Load() }
