package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/mqttclient"
)

// ConnectConfig configures a connection storm: many clients connect (and subscribe to their
// inbox, as a Switchboard client does), then stay idle while the broker's memory is read.
// DefaultConnectConfig shows every default.
type ConnectConfig struct {
	// MQTT are the brokers' addresses; connections go round-robin across them.
	MQTT []string `json:"mqtt"`
	// Connections is how many clients connect.
	Connections int `json:"connections"`
	// Rate is the offered connection rate a second; 0 connects as fast as Concurrency
	// handshakes in flight allow.
	Rate float64 `json:"rate,omitempty"`
	// Concurrency is the most handshakes in flight.
	Concurrency int `json:"concurrency"`
	// Subscribe makes each client subscribe to InboxPrefix+id at QoS 1 after CONNACK.
	Subscribe   bool   `json:"subscribe"`
	InboxPrefix string `json:"inbox_prefix"`
	// MQTTVersion is the protocol version, 4 or 5.
	MQTTVersion byte `json:"mqtt_version"`
	// KeepAlive is the clients' keep-alive (seconds); it must outlast the run, since idle
	// clients here do not ping.
	KeepAlive uint16 `json:"keepalive"`
	// Settle is how long the clients stay idle before memory is read.
	Settle time.Duration `json:"settle"`
	// Admin are Go servers' admin addresses (a Switchboard node's --admin, mochi-bare's
	// --admin): their /metrics give heap, stack and resident memory, and /debug/pprof
	// collects garbage before each reading. Figures are summed over all of them.
	Admin []string `json:"admin,omitempty"`
	// PIDs are processes whose VmRSS (/proc/<pid>/status) is read, summed: for brokers
	// without /metrics, such as mosquitto.
	PIDs []int `json:"pids,omitempty"`
	// GC collects garbage on the Admin servers before each reading.
	GC bool `json:"gc"`
	// Prefix starts client ids.
	Prefix string `json:"prefix"`
	// Username and Password are the clients' credentials, if the broker wants them.
	Username string `json:"username,omitempty"`
	Password string `json:"-"`
	// SourceIPs spread the connections over these source addresses, so a broker's
	// per-address connection rate limit does not throttle the storm.
	SourceIPs []string `json:"source_ips,omitempty"`
	// TLS, when set, makes every connection TLS (a full handshake each: no resumption, as
	// a fleet of devices reconnecting after a broker restart); UseTLS records it.
	TLS    *tls.Config `json:"-"`
	UseTLS bool        `json:"tls,omitempty"`
	// Hold keeps the clients connected this long after memory is read, pinging each every
	// PingInterval (0: no pings), while the servers' CPU is measured (Admin's
	// process_cpu_seconds_total, PIDs' /proc/<pid>/stat). The clients' KeepAlive must
	// allow PingInterval.
	Hold         time.Duration `json:"hold,omitempty"`
	PingInterval time.Duration `json:"ping_interval,omitempty"`
	// Progress, when not nil, gets a status line each second.
	Progress io.Writer `json:"-"`
}

// DefaultConnectConfig returns the defaults.
func DefaultConnectConfig() ConnectConfig {
	return ConnectConfig{
		MQTT:        []string{"127.0.0.1:1883"},
		Connections: 5000,
		Concurrency: 64,
		Subscribe:   true,
		InboxPrefix: "inbox/",
		MQTTVersion: 4,
		KeepAlive:   600,
		Settle:      2 * time.Second,
		GC:          true,
		Prefix:      "bench",
	}
}

// Validate checks the configuration; errors name the field.
func (c ConnectConfig) Validate() error {
	switch {
	case len(c.MQTT) == 0:
		return errors.New("missing MQTT: required")
	case c.Connections < 1:
		return fmt.Errorf("bad Connections %d: want at least 1", c.Connections)
	case c.Rate < 0:
		return fmt.Errorf("bad Rate %v: must not be negative", c.Rate)
	case c.Concurrency < 1:
		return fmt.Errorf("bad Concurrency %d: want at least 1", c.Concurrency)
	case c.MQTTVersion != 4 && c.MQTTVersion != 5:
		return fmt.Errorf("bad MQTTVersion %d: want 4 or 5", c.MQTTVersion)
	case c.Settle < 0:
		return fmt.Errorf("bad Settle %v: must not be negative", c.Settle)
	case c.Hold < 0 || c.PingInterval < 0:
		return fmt.Errorf("bad Hold %v or PingInterval %v: must not be negative", c.Hold, c.PingInterval)
	case c.PingInterval > 0 && c.Hold == 0:
		return errors.New("bad PingInterval: needs Hold")
	case c.PingInterval > 0 && c.KeepAlive > 0 && c.PingInterval >= time.Duration(c.KeepAlive)*time.Second*3/2:
		return fmt.Errorf("bad PingInterval %v: the broker closes clients silent for 1.5 × KeepAlive %ds", c.PingInterval, c.KeepAlive)
	}
	return nil
}

// ConnectStats is what a connection storm measured.
type ConnectStats struct {
	Established int64   `json:"established"`
	Failed      int64   `json:"failed"`
	Seconds     float64 `json:"seconds"` // first dial to last handshake done
	PerSecond   float64 `json:"per_second"`
	Latency     Latency `json:"latency_ms"` // dial to CONNACK (and SUBACK)
	// PerConn are the memory figures before and after, and the growth per connection.
	PerConn []MemoryDelta `json:"per_conn,omitempty"`
	// BytesPerConn is the headline idle memory per connection: resident memory growth
	// (VmRSS when PIDs are given, else process_resident_memory_bytes).
	BytesPerConn float64 `json:"bytes_per_conn,omitempty"`
	// GoBytesPerConn is heap in use plus goroutine stacks, per connection (Go servers).
	GoBytesPerConn float64 `json:"go_bytes_per_conn,omitempty"`
	// GeneratorCPUPerConnUS is the generator's own CPU time (getrusage) per connection
	// established, during the storm: the share of the shared cores it took.
	GeneratorCPUPerConnUS float64 `json:"generator_cpu_us_per_conn,omitempty"`
	// Hold: the servers' CPU while the clients were held (cores, averaged over the hold),
	// and the pings sent, failed and their round trips.
	HoldCPUCores *float64 `json:"hold_cpu_cores,omitempty"`
	Pings        int64    `json:"pings,omitempty"`
	PingsFailed  *int64   `json:"pings_failed,omitempty"` // set when pings were sent
	PingLatency  *Latency `json:"ping_latency_ms,omitempty"`
}

// MemoryDelta is one memory figure before and after the storm.
type MemoryDelta struct {
	Name         string  `json:"name"`
	Before       float64 `json:"before"`
	After        float64 `json:"after"`
	BytesPerConn float64 `json:"bytes_per_conn"`
}

// memoryMetrics are the figures read from a Go server's /metrics.
var memoryMetrics = []string{"process_resident_memory_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes"}

// memorySnapshot sums the memory figures of the configured servers.
func (c ConnectConfig) memorySnapshot(ctx context.Context) (map[string]float64, error) {
	out := map[string]float64{}
	for _, a := range c.Admin {
		if c.GC {
			if err := forceGC(ctx, a); err != nil {
				return nil, fmt.Errorf("collect garbage on %s: %w", a, err)
			}
		}
		m, err := scrapeMetrics(ctx, adminURL(a)+"/metrics")
		if err != nil {
			return nil, err
		}
		for _, name := range memoryMetrics {
			v, ok := m[name]
			if !ok {
				return nil, fmt.Errorf("%s/metrics has no %s", adminURL(a), name)
			}
			out[name] += v
		}
	}
	for _, pid := range c.PIDs {
		v, err := vmRSS(pid)
		if err != nil {
			return nil, err
		}
		out["vmrss"] += float64(v)
	}
	return out, nil
}

// RunConnect runs a connection storm.
func RunConnect(ctx context.Context, cfg ConnectConfig) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	res := &Result{Kind: "connect", Started: time.Now().UTC(), Config: cfg, OK: true}
	before, err := cfg.memorySnapshot(ctx)
	if err != nil {
		return nil, err
	}
	run := cfg.Prefix + "-" + runID()
	clients := make([]*mqttclient.Client, cfg.Connections)
	defer closeAll(clients)
	var hist Histogram
	var established, failed atomic.Int64
	var emu sync.Mutex
	var lastDone atomic.Int64
	var connMeter rateMeter
	prog := startProgress(cfg.Progress, time.Second, func(el time.Duration) string {
		n := established.Load()
		return fmt.Sprintf("connect %5.1fs  connected %d (%.0f/s)  failed %d", el.Seconds(), n, connMeter.rate(n), failed.Load())
	})
	start := time.Now()
	cpu0 := cpuTime()
	idx := make(chan int)
	var wg sync.WaitGroup
	for range min(cfg.Concurrency, cfg.Connections) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				t0 := time.Now()
				c, err := connectIdle(ctx, cfg, i, fmt.Sprintf("%s-%d", run, i))
				if err != nil {
					failed.Add(1)
					emu.Lock()
					res.addError(err.Error())
					emu.Unlock()
					continue
				}
				done := time.Now()
				hist.Record(done.Sub(t0))
				clients[i] = c
				established.Add(1)
				for {
					l := lastDone.Load()
					if int64(done.Sub(start)) <= l || lastDone.CompareAndSwap(l, int64(done.Sub(start))) {
						break
					}
				}
			}
		}()
	}
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
feed:
	for i := range cfg.Connections {
		if interval > 0 {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					break feed
				}
			}
		}
		select {
		case idx <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(idx)
	wg.Wait()
	cpu := cpuTime() - cpu0
	prog.Stop()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	s := &ConnectStats{Established: established.Load(), Failed: failed.Load(), Latency: hist.Summary()}
	s.Seconds = time.Duration(lastDone.Load()).Seconds()
	if s.Seconds > 0 {
		s.PerSecond = float64(s.Established) / s.Seconds
	}
	s.GeneratorCPUPerConnUS = perMessageUS(cpu, s.Established)
	res.Connect = s
	if s.Failed > 0 {
		res.fail("%d of %d connections failed", s.Failed, cfg.Connections)
	}
	if len(cfg.Admin) > 0 || len(cfg.PIDs) > 0 {
		select {
		case <-time.After(cfg.Settle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		after, err := cfg.memorySnapshot(ctx)
		if err != nil {
			return nil, err
		}
		// Clients that dropped while idle would make the figures per connection wrong.
		for _, c := range clients {
			if c != nil && c.IdleClosed() {
				res.fail("a client was disconnected while idle: %v", c.Err())
				break
			}
		}
		names := make([]string, 0, len(after))
		for k := range after {
			names = append(names, k)
		}
		sort.Strings(names)
		n := float64(max(s.Established, 1))
		for _, k := range names {
			s.PerConn = append(s.PerConn, MemoryDelta{Name: k, Before: before[k], After: after[k], BytesPerConn: (after[k] - before[k]) / n})
		}
		if _, ok := after["vmrss"]; ok {
			s.BytesPerConn = (after["vmrss"] - before["vmrss"]) / n
		} else {
			s.BytesPerConn = (after["process_resident_memory_bytes"] - before["process_resident_memory_bytes"]) / n
		}
		if _, ok := after["go_memstats_heap_inuse_bytes"]; ok {
			s.GoBytesPerConn = (after["go_memstats_heap_inuse_bytes"] + after["go_memstats_stack_inuse_bytes"] -
				before["go_memstats_heap_inuse_bytes"] - before["go_memstats_stack_inuse_bytes"]) / n
		}
	}
	if cfg.Hold > 0 {
		if err := cfg.hold(ctx, clients, s); err != nil {
			return nil, err
		}
		if s.PingsFailed != nil && *s.PingsFailed > 0 {
			res.fail("%d of %d pings failed while held", *s.PingsFailed, s.Pings)
		}
	}
	return res, nil
}

// serverCPU sums the servers' CPU seconds so far.
func (c ConnectConfig) serverCPU(ctx context.Context) (float64, error) {
	urls := make([]string, len(c.Admin))
	for i, a := range c.Admin {
		urls[i] = adminURL(a) + "/metrics"
	}
	total, err := cpuSeconds(ctx, urls)
	if err != nil {
		return 0, err
	}
	if len(c.Admin) > 0 {
		return total, nil // a Go broker given both ways counts once
	}
	for _, pid := range c.PIDs {
		v, err := pidCPUSeconds(pid)
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, nil
}

// hold keeps the clients for cfg.Hold, pinging each every cfg.PingInterval from
// cfg.Concurrency workers, and records the servers' CPU over it.
func (c ConnectConfig) hold(ctx context.Context, clients []*mqttclient.Client, s *ConnectStats) error {
	measured := len(c.Admin) > 0 || len(c.PIDs) > 0
	var cpu0 float64
	if measured {
		v, err := c.serverCPU(ctx)
		if err != nil {
			return err
		}
		cpu0 = v
	}
	start := time.Now()
	end := start.Add(c.Hold)
	var hist Histogram
	var pings, failed atomic.Int64
	for round := 0; c.PingInterval > 0; round++ {
		at := start.Add(time.Duration(round+1) * c.PingInterval)
		if at.After(end) {
			break
		}
		select {
		case <-time.After(time.Until(at)):
		case <-ctx.Done():
			return ctx.Err()
		}
		idx := make(chan int)
		var wg sync.WaitGroup
		for range c.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range idx {
					pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					t0 := time.Now()
					err := clients[i].Ping(pctx)
					cancel()
					pings.Add(1)
					if err != nil {
						failed.Add(1)
						continue
					}
					hist.Record(time.Since(t0))
				}
			}()
		}
		for i, cl := range clients {
			if cl != nil {
				idx <- i
			}
		}
		close(idx)
		wg.Wait()
	}
	select {
	case <-time.After(time.Until(end)):
	case <-ctx.Done():
		return ctx.Err()
	}
	if measured {
		cpu1, err := c.serverCPU(ctx)
		if err != nil {
			return err
		}
		cores := (cpu1 - cpu0) / time.Since(start).Seconds()
		s.HoldCPUCores = &cores
	}
	s.Pings = pings.Load()
	if s.Pings > 0 {
		f := failed.Load()
		l := hist.Summary()
		s.PingsFailed, s.PingLatency = &f, &l
	}
	return nil
}

// connectIdle connects (and subscribes) a client that then stays idle: no goroutines of
// its own and a small read buffer, so the generator holds many cheaply.
func connectIdle(ctx context.Context, cfg ConnectConfig, i int, id string) (*mqttclient.Client, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := mqttclient.Dial(cctx, cfg.MQTT[i%len(cfg.MQTT)], mqttclient.Options{
		ID: id, Version: cfg.MQTTVersion, KeepAlive: cfg.KeepAlive, ReadBufferSize: 512,
		Username: cfg.Username, Password: cfg.Password, LocalAddr: sourceFor(cfg.SourceIPs, i), TLS: cfg.TLS,
	})
	if err != nil {
		return nil, err
	}
	if cfg.Subscribe {
		if err := c.Subscribe(cctx, cfg.InboxPrefix+id, 1); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func closeAll(clients []*mqttclient.Client) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 128)
	for _, c := range clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); defer func() { <-sem }(); c.Close() }()
	}
	wg.Wait()
}
