package node

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-mqtt/switchboard/internal/tlsconf"
)

// stateCollector exports what /healthz says as gauges, read from the node at each scrape,
// so Prometheus sees what the load balancer and the monitor see: readiness, the quarantine
// mark, each readiness check, the delivery lease.
type stateCollector struct {
	n                                  *Node
	ready, quarantined, check, leaseOK *prometheus.Desc
	epoch                              *prometheus.Desc
}

// registerStateMetrics registers the node's state gauges and the expiry of the
// certificates it presents.
func registerStateMetrics(reg *prometheus.Registry, n *Node) {
	reg.MustRegister(&stateCollector{
		n: n,
		ready: prometheus.NewDesc("switchboard_node_ready",
			"1 while /healthz answers 200: registered, not quarantined, lease held, every readiness check passing.", nil, nil),
		quarantined: prometheus.NewDesc("switchboard_node_quarantined",
			"1 while a quarantine mark stands for this node (from the mark's appearance, through the grace period, until it is released).", nil, nil),
		check: prometheus.NewDesc("switchboard_node_check_ok",
			"1 while a readiness check passes (store: the store answers a ping; disk; memory; accept: the MQTT accept loop runs).", []string{"check"}, nil),
		leaseOK: prometheus.NewDesc("switchboard_node_lease_valid",
			"1 while the node holds its delivery lease (it sends nothing to clients without it).", nil, nil),
		epoch: prometheus.NewDesc("switchboard_node_epoch",
			"The node's registration epoch: it changes each time the node registers again.", nil, nil),
	})
	tlsconf.RegisterExpiry(reg, "mqtt", n.cfg.MQTTTLS)
	tlsconf.RegisterExpiry(reg, "internal", n.cfg.InternalTLS)
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.ready, c.quarantined, c.check, c.leaseOK, c.epoch} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.n.Health()
	gauge := func(d *prometheus.Desc, on bool, labels ...string) {
		v := 0.0
		if on {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.ready, h.Ready)
	gauge(c.quarantined, h.Quarantined)
	names := make([]string, 0, len(h.Checks))
	for name := range h.Checks {
		if name != "lease" { // present only while lapsed: switchboard_node_lease_valid says it always
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		gauge(c.check, h.Checks[name].OK, name)
	}
	gauge(c.leaseOK, c.n.lease != nil && c.n.lease.Valid())
	ch <- prometheus.MustNewConstMetric(c.epoch, prometheus.GaugeValue, float64(h.Epoch))
}
