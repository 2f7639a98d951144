package monitor

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-mqtt/switchboard/zkstat"
)

// zkCollector asks every ZooKeeper server for its srvr report at each scrape and exports
// what `switchboard zk status` shows. ZooKeeper's own metrics need its Prometheus provider
// configured on every server; this needs only srvr, which every server answers by default,
// and it judges the quorum as `zk status` does. Every monitor exports it, leading or not,
// so the quorum is seen from several places.
type zkCollector struct {
	addrs   []string
	timeout time.Duration

	quorum, serving, leader, latency, outstanding, conns, znodes *prometheus.Desc
}

func newZKCollector(addrs []string, timeout time.Duration) *zkCollector {
	server := []string{"server"}
	return &zkCollector{
		addrs: addrs, timeout: timeout,
		quorum: prometheus.NewDesc("switchboard_monitor_zk_quorum",
			"1 while a majority of the ZooKeeper servers listed in --zk serves, with a leader (as `switchboard zk status` judges it).", nil, nil),
		serving: prometheus.NewDesc("switchboard_monitor_zk_server_serving",
			"1 while the server answers srvr as leader, follower, observer or standalone.", server, nil),
		leader: prometheus.NewDesc("switchboard_monitor_zk_server_leader",
			"1 while the server is the ensemble's leader.", server, nil),
		latency: prometheus.NewDesc("switchboard_monitor_zk_server_latency_avg_seconds",
			"The server's average request latency since its statistics were last reset (srvr).", server, nil),
		outstanding: prometheus.NewDesc("switchboard_monitor_zk_server_outstanding_requests",
			"Requests queued on the server (srvr): a rising count means it cannot keep up.", server, nil),
		conns: prometheus.NewDesc("switchboard_monitor_zk_server_connections",
			"Client connections to the server (srvr).", server, nil),
		znodes: prometheus.NewDesc("switchboard_monitor_zk_server_znodes",
			"znodes in the server's data tree (srvr).", server, nil),
	}
}

func (c *zkCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.quorum, c.serving, c.leader, c.latency, c.outstanding, c.conns, c.znodes} {
		ch <- d
	}
}

func (c *zkCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	e := zkstat.Query(ctx, c.addrs)
	bit := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	ch <- prometheus.MustNewConstMetric(c.quorum, prometheus.GaugeValue, bit(e.Quorum))
	for _, s := range e.Servers {
		ch <- prometheus.MustNewConstMetric(c.serving, prometheus.GaugeValue, bit(s.Serving()), s.Addr)
		ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, bit(s.Serving() && s.Mode == "leader"), s.Addr)
		if s.Error != "" {
			continue // the rest is unknown, not zero
		}
		ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, s.LatencyAvg/1000, s.Addr)
		ch <- prometheus.MustNewConstMetric(c.outstanding, prometheus.GaugeValue, float64(s.Outstanding), s.Addr)
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.Connections), s.Addr)
		ch <- prometheus.MustNewConstMetric(c.znodes, prometheus.GaugeValue, float64(s.NodeCount), s.Addr)
	}
}
