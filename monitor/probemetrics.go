package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// probeCollector exports the leader's last probe round, node by node, at each scrape:
// what /v1/state shows. Nodes that left the round leave the metrics with it, and a
// monitor that does not lead exports none.
type probeCollector struct {
	m         *Monitor
	ok, taken *prometheus.Desc
}

func newProbeCollector(m *Monitor) *probeCollector {
	labels := []string{"node", "probe"}
	return &probeCollector{
		m: m,
		ok: prometheus.NewDesc("switchboard_monitor_probe_ok",
			"1 if the node passed the probe in the leader's last round (probe: mqtt_ping, end_to_end, readiness).", labels, nil),
		taken: prometheus.NewDesc("switchboard_monitor_probe_seconds",
			"How long the node's probe took in the leader's last round, when it passed.", labels, nil),
	}
}

func (c *probeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.ok; ch <- c.taken }

func (c *probeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.m.State()
	if !st.Leading {
		return
	}
	for node, p := range st.Nodes {
		for _, pc := range []struct {
			name  string
			check Check
		}{{"mqtt_ping", p.MQTT}, {"end_to_end", p.E2E}, {"readiness", p.Health}} {
			v := 0.0
			if pc.check.OK {
				v = 1
				ch <- prometheus.MustNewConstMetric(c.taken, prometheus.GaugeValue, pc.check.Millis/1000, node, pc.name)
			}
			ch <- prometheus.MustNewConstMetric(c.ok, prometheus.GaugeValue, v, node, pc.name)
		}
	}
}
