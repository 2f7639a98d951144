// Package monitor is Switchboard's health monitor: it finds sick nodes from outside, as a
// client would meet them, and takes them out of service. Several monitors run, for
// availability; one leads (election "monitor" in the coordinator) and
// probes every live node each interval: an MQTT PING, an end-to-end publish through the
// node, the node's own readiness report, and its delivery counters. A node that stays
// sick is quarantined with a persistent mark, written only while this monitor still leads
// (a fenced write), within limits that keep a confused monitor from emptying the cluster.
package monitor

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Config configures a Monitor. DefaultConfig shows every default.
type Config struct {
	// ID names this monitor in the election and in the marks it writes.
	ID string
	// Interval between probe rounds.
	Interval time.Duration
	// ProbeTimeout bounds one node's probes; slower counts as failed.
	ProbeTimeout time.Duration
	// FailAfter: a node is unhealthy after this many consecutive failed probe rounds.
	FailAfter int
	// SlowLatency is the end-to-end round trip above which a probe is slow, if it is also
	// SlowFactor times slower than the median of the node's peers.
	SlowLatency time.Duration
	// SlowFactor: how much slower than its peers a node must be to count as slow.
	SlowFactor float64
	// SlowAfter: a node is unhealthy after this many consecutive slow (or erroring) rounds.
	SlowAfter int
	// ErrorRatio is the share of failed deliveries above which a node is erroring, if it
	// is also three times its peers' median and it handled at least ErrorMinVolume.
	ErrorRatio float64
	// ErrorMinVolume is the least deliveries in a round before the error ratio counts.
	ErrorMinVolume int64
	// MaxQuarantined is the most nodes under quarantine at once.
	MaxQuarantined int
	// MinHealthy: never quarantine a node if fewer healthy live nodes would remain.
	MinHealthy int
	// ProbeUsername and ProbePassword are the credentials probe clients connect with
	// (a JWT goes in ProbePassword); empty when the nodes allow anonymous clients.
	ProbeUsername string
	ProbePassword string
	// AdminAddr is where this monitor's Handler answers, as others should dial it. It is
	// published with its candidacy, so that a router's dashboard can read the leader's last
	// probes (/v1/state) there. Empty publishes no address.
	AdminAddr string
	// ZooKeeper lists the ensemble's servers (host:port) whose srvr answers the monitor
	// exports at /metrics at each scrape (switchboard_monitor_zk_*): the quorum alert's
	// source. Empty (an etcd cluster): none.
	ZooKeeper []string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		ID:             "monitor-" + host,
		Interval:       time.Second,
		ProbeTimeout:   2 * time.Second,
		FailAfter:      3,
		SlowLatency:    250 * time.Millisecond,
		SlowFactor:     5,
		SlowAfter:      5,
		ErrorRatio:     0.5,
		ErrorMinVolume: 20,
		MaxQuarantined: 1,
		MinHealthy:     2,
		AdminAddr:      "", // none; `switchboard monitor` publishes its --admin address
	}
}

// Validate checks the configuration; errors name the field.
func (c Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("monitor id is empty")
	case c.Interval <= 0:
		return fmt.Errorf("interval %v must be positive", c.Interval)
	case c.ProbeTimeout <= 0:
		return fmt.Errorf("probe timeout %v must be positive", c.ProbeTimeout)
	case c.FailAfter < 1 || c.SlowAfter < 1:
		return fmt.Errorf("fail-after %d and slow-after %d must be at least 1", c.FailAfter, c.SlowAfter)
	case c.SlowFactor < 1:
		return fmt.Errorf("slow factor %g must be at least 1", c.SlowFactor)
	case c.ErrorRatio <= 0 || c.ErrorRatio > 1:
		return fmt.Errorf("error ratio %g must be in (0, 1]", c.ErrorRatio)
	case c.MaxQuarantined < 0:
		return fmt.Errorf("max quarantined %d must not be negative", c.MaxQuarantined)
	case c.MinHealthy < 0:
		return fmt.Errorf("min healthy %d must not be negative", c.MinHealthy)
	}
	return nil
}
