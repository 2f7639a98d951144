package bench

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"
)

// Result is what one benchmark run measured. Sections that do not apply to a kind are
// omitted from its JSON.
type Result struct {
	Kind    string    `json:"kind"`             // direct, pubsub or connect
	Label   string    `json:"label,omitempty"`  // set by the caller, for reports
	System  string    `json:"system,omitempty"` // set by the caller, for reports
	Started time.Time `json:"started"`
	Config  any       `json:"config"`

	// Messages (direct, pubsub).
	SendSeconds   float64          `json:"send_seconds,omitempty"` // the sending phase
	Sent          int64            `json:"sent,omitempty"`
	AcceptedPerS  float64          `json:"accepted_per_s,omitempty"`  // accepted by the router / acknowledged by the broker (QoS 1) / written (QoS 0)
	DeliveredPerS float64          `json:"delivered_per_s,omitempty"` // distinct messages received, over the time to the last one
	Latency       *Latency         `json:"latency_ms,omitempty"`      // send to first receipt
	Answer        *Latency         `json:"answer_ms,omitempty"`       // direct: request sent to answer read, over every answered request
	Burst         *BurstStats      `json:"burst,omitempty"`           // direct with a burst: per-client figures
	Failover      *FailoverStats   `json:"failover,omitempty"`        // direct with Reconnect: clients back, backlog drained
	Completeness  *Completeness    `json:"completeness,omitempty"`
	Outcomes      map[string]int64 `json:"outcomes,omitempty"` // router outcomes (delivered, queued, ...)
	Misrouted     int64            `json:"misrouted,omitempty"`
	Placement     *Placement       `json:"placement,omitempty"` // pubsub: where the clients connected

	// Connection storm (connect).
	Connect *ConnectStats `json:"connect,omitempty"`

	// CPU per message, in microseconds: the generator's own (getrusage), and the servers'
	// (process_cpu_seconds_total from their /metrics) where known.
	GeneratorCPUPerMsgUS float64  `json:"generator_cpu_us_per_msg,omitempty"`
	RouterCPUPerMsgUS    *float64 `json:"router_cpu_us_per_msg,omitempty"`
	NodeCPUPerMsgUS      *float64 `json:"node_cpu_us_per_msg,omitempty"`

	Errors   []string `json:"errors,omitempty"` // examples of request/connection errors
	Failures []string `json:"failures,omitempty"`
	OK       bool     `json:"ok"`
}

// Placement is where a pub/sub run's clients connected.
type Placement struct {
	Pairs int `json:"pairs"`
	// CrossBroker is how many pairs had their publisher and subscriber on different
	// addresses: for a cluster's nodes, the pairs whose messages cross between nodes.
	CrossBroker int `json:"cross_broker"`
	// Routes are the distinct (subscriber's, publisher's) addresses, in the order of their
	// first pair.
	Routes []PlacementRoute `json:"routes"`
}

// PlacementRoute is how many pairs had their subscriber on Sub and publisher on Pub.
type PlacementRoute struct {
	Sub   string `json:"sub"`
	Pub   string `json:"pub"`
	Pairs int    `json:"pairs"`
}

// fail records a reason the run failed.
func (r *Result) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
	r.OK = false
}

// addError keeps the first few error messages.
func (r *Result) addError(msg string) {
	if len(r.Errors) < maxExamples {
		r.Errors = append(r.Errors, msg)
	}
}

// WriteText writes the result for a person.
func (r *Result) WriteText(w io.Writer) {
	var b strings.Builder
	switch r.Kind {
	case "direct", "pubsub":
		c := r.Completeness
		fmt.Fprintf(&b, "%s: %d sent in %.2fs\n", r.Kind, r.Sent, r.SendSeconds)
		if p := r.Placement; p != nil {
			fmt.Fprintf(&b, "  placement  %d pair(s), %d with publisher and subscriber on different brokers\n", p.Pairs, p.CrossBroker)
			for k, rt := range p.Routes {
				if k == maxExamples {
					fmt.Fprintf(&b, "    and %d more (in the JSON result)\n", len(p.Routes)-k)
					break
				}
				fmt.Fprintf(&b, "    subscriber on %s, publisher on %s: %d pair(s)\n", rt.Sub, rt.Pub, rt.Pairs)
			}
		}
		fmt.Fprintf(&b, "  accepted   %10d  %10.0f msg/s\n", c.Accepted, r.AcceptedPerS)
		fmt.Fprintf(&b, "  delivered  %10d  %10.0f msg/s\n", c.Received, r.DeliveredPerS)
		if r.Latency != nil && r.Latency.Count > 0 {
			l := r.Latency
			fmt.Fprintf(&b, "  latency ms  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f)\n",
				l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
		}
		if a := r.Answer; a != nil && a.Count > 0 {
			fmt.Fprintf(&b, "  answer ms   p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  (%d requests)\n", a.P50, a.P90, a.P99, a.Max, a.Count)
		}
		if s := r.Burst; s != nil {
			fmt.Fprintf(&b, "  burst      %d to each of %d client(s), %d complete: per client %.0f msg/s (min %.0f, max %.0f) in %.3fs (max %.3fs)\n",
				s.PerClient, s.Clients, s.ClientsComplete, s.ClientPerS.P50, s.ClientPerS.Min, s.ClientPerS.Max,
				s.ClientSeconds.P50, s.ClientSeconds.Max)
		}
		fmt.Fprintf(&b, "  check      missing %d, out of order %d, duplicates %d, refused %d, unexpected %d",
			c.Missing, c.OutOfOrder, c.Duplicates, c.Refused, c.Unexpected)
		if r.Misrouted > 0 {
			fmt.Fprintf(&b, ", misrouted %d", r.Misrouted)
		}
		b.WriteString("\n")
		for _, e := range c.Examples {
			fmt.Fprintf(&b, "    %s\n", e)
		}
		if len(r.Outcomes) > 0 {
			fmt.Fprintf(&b, "  outcomes  ")
			for _, k := range []string{"delivered", "queued", "expired"} {
				if v, ok := r.Outcomes[k]; ok {
					fmt.Fprintf(&b, " %s %d", k, v)
				}
			}
			b.WriteString("\n")
		}
	case "connect":
		s := r.Connect
		fmt.Fprintf(&b, "connect: %d connections in %.2fs: %.0f conn/s (%d failed)\n",
			s.Established, s.Seconds, s.PerSecond, s.Failed)
		if s.Latency.Count > 0 {
			fmt.Fprintf(&b, "  connect ms  p50 %.3f  p99 %.3f  max %.3f\n", s.Latency.P50, s.Latency.P99, s.Latency.Max)
		}
		for _, m := range s.PerConn {
			fmt.Fprintf(&b, "  %-28s %10.0f bytes/connection  (%s → %s)\n", m.Name, m.BytesPerConn,
				formatBytes(m.Before), formatBytes(m.After))
		}
	}
	if r.GeneratorCPUPerMsgUS > 0 {
		fmt.Fprintf(&b, "  cpu µs/msg  generator %.2f", r.GeneratorCPUPerMsgUS)
		if r.RouterCPUPerMsgUS != nil {
			fmt.Fprintf(&b, "  router %.2f", *r.RouterCPUPerMsgUS)
		}
		if r.NodeCPUPerMsgUS != nil {
			fmt.Fprintf(&b, "  nodes %.2f", *r.NodeCPUPerMsgUS)
		}
		b.WriteString("\n")
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "  error: %s\n", e)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "  FAILED: %s\n", f)
	}
	_, _ = io.WriteString(w, b.String())
}

func formatBytes(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

// perMessageUS is d spread over n messages, in microseconds.
func perMessageUS(d time.Duration, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return float64(d) / float64(time.Microsecond) / float64(n)
}

// tally is what the direct and pubsub runners count as messages flow, and how it becomes a
// Result.
type tally struct {
	epoch     time.Time // stamps count from here
	check     *Checker
	hist      Histogram
	sent      atomic.Int64
	misrouted atomic.Int64
	lastRecv  atomic.Int64 // ns since epoch of the latest first receipt
}

// fill records the run's figures: sending ran from start to sendEnd, and the generator
// spent cpu.
func (t *tally) fill(res *Result, start, sendEnd time.Time, cpu time.Duration) {
	c := t.check.Result()
	res.Completeness = &c
	res.Sent = t.sent.Load()
	res.SendSeconds = sendEnd.Sub(start).Seconds()
	res.AcceptedPerS = float64(c.Accepted) / res.SendSeconds
	if last := time.Duration(t.lastRecv.Load()); last > 0 {
		res.DeliveredPerS = float64(c.Received) / (last - start.Sub(t.epoch)).Seconds()
	}
	l := t.hist.Summary()
	res.Latency = &l
	res.Misrouted = t.misrouted.Load()
	res.GeneratorCPUPerMsgUS = perMessageUS(cpu, c.Received)
}
