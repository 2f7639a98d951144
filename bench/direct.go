package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/mqttclient"
)

// DirectConfig configures a directed-message benchmark: MQTT clients subscribed to their
// inboxes on the nodes, and senders posting messages for them to a router's HTTP API.
// DefaultDirectConfig shows every default.
type DirectConfig struct {
	// API is the router's base URL.
	API string `json:"api"`
	// MQTT are the nodes' MQTT addresses; clients connect round-robin across them.
	MQTT []string `json:"mqtt"`
	// Clients is how many MQTT clients receive.
	Clients int `json:"clients"`
	// Senders is how many goroutines post to the API, each with one request in flight.
	// Each client belongs to one sender, so its messages are accepted in sequence order
	// (but for a burst with more senders than clients: see Burst).
	Senders int `json:"senders"`
	// Count is how many messages to send in all; 0 sends for Duration, or a Burst.
	Count int `json:"count,omitempty"`
	// Burst, when positive, sends every client a burst of that many messages as fast as
	// the API takes them: many messages in flight per client, where Count spreads few
	// over many clients. With more senders than clients a client's burst is split over
	// several senders, and order is checked per sender and client, as the API promises it.
	// The result's burst section has each client's throughput, from the first send to it
	// to its last receipt.
	Burst int `json:"burst,omitempty"`
	// Duration bounds the sending when neither Count nor Burst is given.
	Duration time.Duration `json:"duration,omitempty"`
	// Rate is the offered rate in messages a second over all senders; 0 sends as fast as
	// the router answers (saturation). With a rate, latency counts from each message's
	// scheduled time, so a stall is not hidden by sending less (no coordinated omission).
	Rate float64 `json:"rate,omitempty"`
	// Batch is the messages per request: 1 posts /v1/messages, more post /v1/messages/batch.
	Batch int `json:"batch"`
	// QoS of the messages and of the inbox subscriptions: 0 or 1.
	QoS byte `json:"qos"`
	// Size is the payload size in bytes (at least 32: the stamp).
	Size int `json:"size"`
	// MaxWait, when positive, is every request's max_wait: how long the router waits for
	// an online client's PUBACK before it queues the message and answers "queued". 0
	// leaves it to the router's --max-wait.
	MaxWait time.Duration `json:"max_wait,omitempty"`
	// NoReceipts sends every message with receipt:false (the API's default is a receipt
	// per message), to measure what receipts cost.
	NoReceipts bool `json:"no_receipts,omitempty"`
	// Priority, when set ("high" or "normal"), is every message's priority: high ones go
	// through their mailbox's high lane.
	Priority string `json:"priority,omitempty"`
	// DeliverIn, when positive, schedules every message this long after its request
	// (deliver_at): what the schedule adds, latency counted from the request.
	DeliverIn time.Duration `json:"deliver_in,omitempty"`
	// DelayClients is how many clients, the first ones, connect through a DelayProxy that
	// delays each direction by Delay: clients behind a slow link.
	DelayClients int `json:"delay_clients,omitempty"`
	// Delay is the DelayClients' delay each way.
	Delay time.Duration `json:"delay,omitempty"`
	// MQTTVersion is the clients' protocol version, 4 or 5.
	MQTTVersion byte `json:"mqtt_version"`
	// Prefix starts every client id; a random run id follows, so runs never share a mailbox.
	Prefix string `json:"prefix"`
	// InboxPrefix: client c subscribes to InboxPrefix+c.
	InboxPrefix string `json:"inbox_prefix"`
	// DrainTimeout bounds the wait for accepted messages after the last send.
	DrainTimeout time.Duration `json:"drain_timeout"`
	// RouterMetrics is the router's /metrics URL for its CPU per message; "" for
	// API+"/metrics", "-" for none.
	RouterMetrics string `json:"router_metrics,omitempty"`
	// NodeAdmin are the nodes' admin addresses, for their CPU per message (optional).
	NodeAdmin []string `json:"node_admin,omitempty"`
	// Token is the API's bearer token, if it wants one.
	Token string `json:"-"`
	// Username and Password are the MQTT clients' credentials, if the nodes want them.
	Username string `json:"username,omitempty"`
	Password string `json:"-"`
	// Reconnect makes every client behave as a device whose node goes away: when its
	// connection ends it waits up to ReconnectJitter, dials another node (ReconnectMQTT,
	// or another of MQTT), subscribes again and backs off exponentially while that fails.
	// The result's failover section says how long they took to come back and drain.
	Reconnect bool `json:"reconnect,omitempty"`
	// ReconnectMQTT are the addresses reconnecting clients dial; empty: MQTT.
	ReconnectMQTT []string `json:"reconnect_mqtt,omitempty"`
	// ReconnectJitter bounds a client's first wait before it redials, and starts its
	// back-off (doubling to 30s, each wait drawn at random below the bound).
	ReconnectJitter time.Duration `json:"reconnect_jitter,omitempty"`
	// KillPID, when positive, is a process (a node) the run SIGKILLs KillAfter into the
	// sending, with Reconnect implied.
	KillPID   int           `json:"kill_pid,omitempty"`
	KillAfter time.Duration `json:"kill_after,omitempty"`
	// SourceIPs spread the clients' connections over these source addresses.
	SourceIPs []string `json:"source_ips,omitempty"`
	// Progress, when not nil, gets a status line each second (a terminal).
	Progress io.Writer `json:"-"`
}

// DefaultDirectConfig returns the defaults.
func DefaultDirectConfig() DirectConfig {
	return DirectConfig{
		API:          "http://127.0.0.1:8080",
		MQTT:         []string{"127.0.0.1:1883"},
		Clients:      100,
		Senders:      16,
		Duration:     10 * time.Second,
		Batch:        1,
		QoS:          1,
		Size:         64,
		Delay:        50 * time.Millisecond, // a 100 ms round trip
		MQTTVersion:  5,
		Prefix:       "bench",
		InboxPrefix:  "inbox/",
		DrainTimeout: 30 * time.Second,

		ReconnectJitter: time.Second,
		KillAfter:       5 * time.Second,
	}
}

// Validate checks the configuration; errors name the field.
func (c DirectConfig) Validate() error {
	switch {
	case c.API == "":
		return errors.New("missing API: required")
	case len(c.MQTT) == 0:
		return errors.New("missing MQTT: required")
	case c.Priority != "" && c.Priority != "high" && c.Priority != "normal":
		return fmt.Errorf("Priority %q: use high or normal", c.Priority)
	case c.DeliverIn < 0:
		return fmt.Errorf("DeliverIn %v: must not be negative", c.DeliverIn)
	case c.Clients < 1:
		return fmt.Errorf("bad Clients %d: want at least 1", c.Clients)
	case c.Senders < 1:
		return fmt.Errorf("bad Senders %d: want at least 1", c.Senders)
	case c.Count < 0:
		return fmt.Errorf("bad Count %d: must not be negative", c.Count)
	case c.Burst < 0 || c.Burst > 10_000_000:
		return fmt.Errorf("bad Burst %d: want 0 to 10000000", c.Burst)
	case int64(c.Burst)*int64(c.Clients) > 100_000_000:
		return fmt.Errorf("bad Burst %d to Clients %d: at most 100000000 messages in all", c.Burst, c.Clients)
	case c.Burst > 0 && c.Count > 0:
		return errors.New("give Burst or Count, not both")
	case c.Burst > 0 && c.Rate > 0:
		return fmt.Errorf("bad Rate %v: a Burst is sent as fast as the router takes it", c.Rate)
	case c.Count == 0 && c.Burst == 0 && c.Duration <= 0:
		return errors.New("give Count, Burst or a positive Duration")
	case c.Rate < 0:
		return fmt.Errorf("bad Rate %v: must not be negative", c.Rate)
	case c.MaxWait < 0 || c.MaxWait > 0 && c.MaxWait < time.Millisecond:
		return fmt.Errorf("bad MaxWait %v: want 0 (the router's default) or at least 1ms", c.MaxWait)
	case c.DelayClients < 0 || c.DelayClients > c.Clients:
		return fmt.Errorf("bad DelayClients %d: want 0 to Clients (%d)", c.DelayClients, c.Clients)
	case c.DelayClients > 0 && (c.Delay <= 0 || c.Delay > 10*time.Second):
		return fmt.Errorf("bad Delay %v: want more than 0 and at most 10s", c.Delay)
	case c.Batch < 1 || c.Batch > 1000:
		return fmt.Errorf("bad Batch %d: want 1 to 1000", c.Batch)
	case c.QoS > 1:
		return fmt.Errorf("bad QoS %d: want 0 or 1", c.QoS)
	case c.Size < stampLen || c.Size > 256<<10:
		return fmt.Errorf("bad Size %d: want %d to %d bytes", c.Size, stampLen, 256<<10)
	case c.MQTTVersion != 4 && c.MQTTVersion != 5:
		return fmt.Errorf("bad MQTTVersion %d: want 4 or 5", c.MQTTVersion)
	case c.DrainTimeout <= 0:
		return fmt.Errorf("bad DrainTimeout %v: must be positive", c.DrainTimeout)
	case c.KillPID < 0:
		return fmt.Errorf("bad KillPID %d: must not be negative", c.KillPID)
	case (c.Reconnect || c.KillPID > 0) && c.Burst > 0:
		return errors.New("Reconnect with a Burst: not supported (a failover run spreads its messages over the clients)")
	case (c.Reconnect || c.KillPID > 0) && (c.ReconnectJitter <= 0 || c.ReconnectJitter > time.Minute):
		return fmt.Errorf("bad ReconnectJitter %v: want more than 0 and at most 1m", c.ReconnectJitter)
	case c.KillPID > 0 && c.KillAfter <= 0:
		return fmt.Errorf("bad KillAfter %v: must be positive", c.KillAfter)
	}
	return nil
}

// runID is a short random id that keeps one run's client ids apart from another's.
func runID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// direct is one running directed benchmark.
type direct struct {
	cfg DirectConfig
	tally
	ids     []string
	clients []*mqttclient.Client
	lanes   []lane // by checker stream
	http    *http.Client
	proxies map[string]*DelayProxy // by node address, for DelayClients
	answers Histogram              // request to answer

	// By client: when the first request with a message for it was sent, when its latest
	// first receipt came and how many (ns since epoch), for a burst's per-client figures.
	firstSend   []atomic.Int64
	lastRecvAt  []atomic.Int64
	receivedFor []atomic.Int64

	foreign atomic.Int64 // payloads without a stamp

	fo *failover // with Reconnect

	mu       sync.Mutex
	outcomes map[string]int64
	errs     []string
	nerrs    int64
}

// RunDirect runs a directed-message benchmark. It returns an error when it could not run
// (clients could not connect, the router is unreachable); a run that lost messages or
// broke their order returns a Result with OK false.
func RunDirect(ctx context.Context, cfg DirectConfig) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Burst == 0 {
		cfg.Senders = min(cfg.Senders, cfg.Clients)
	}
	if cfg.KillPID > 0 {
		cfg.Reconnect = true
	}
	lanes := planLanes(cfg)
	d := &direct{
		cfg:         cfg,
		tally:       tally{check: NewChecker(len(lanes))},
		lanes:       lanes,
		outcomes:    map[string]int64{},
		firstSend:   make([]atomic.Int64, cfg.Clients),
		lastRecvAt:  make([]atomic.Int64, cfg.Clients),
		receivedFor: make([]atomic.Int64, cfg.Clients),
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * cfg.Senders,
		MaxIdleConnsPerHost: 2 * cfg.Senders,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	d.http = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	res := &Result{Kind: "direct", Started: time.Now().UTC(), Config: cfg, OK: true}

	run := cfg.Prefix + "-" + runID()
	d.ids = make([]string, cfg.Clients)
	for i := range d.ids {
		d.ids[i] = fmt.Sprintf("%s-%d", run, i)
	}
	d.epoch = time.Now()
	if err := d.startProxies(); err != nil {
		return nil, err
	}
	defer d.closeProxies()
	defer d.closeClients()
	if cfg.Reconnect {
		d.fo = newFailover(d)
		// Before closeClients: a supervisor would take a closed client for a lost one.
		defer func() { d.clients = d.fo.shutdown() }()
	}
	if err := d.connect(ctx); err != nil {
		return nil, err
	}

	metricsURLs := d.routerMetricsURLs()
	nodeURLs := make([]string, len(cfg.NodeAdmin))
	for i, a := range cfg.NodeAdmin {
		nodeURLs[i] = adminURL(a) + "/metrics"
	}
	routerCPU0, routerErr := cpuSeconds(ctx, metricsURLs)
	nodeCPU0, nodeErr := cpuSeconds(ctx, nodeURLs)
	cpu0 := cpuTime()

	start := time.Now()
	var deadline time.Time // zero: until Count is sent
	if cfg.Count == 0 && cfg.Burst == 0 {
		deadline = start.Add(cfg.Duration)
	}
	var accMeter, recvMeter rateMeter
	prog := startProgress(cfg.Progress, time.Second, func(el time.Duration) string {
		acc, recv := d.check.Accepted(), d.check.Received()
		return fmt.Sprintf("direct %5.1fs  accepted %d (%.0f/s)  delivered %d (%.0f/s)  errors %d",
			el.Seconds(), acc, accMeter.rate(acc), recv, recvMeter.rate(recv), d.errorCount())
	})
	if cfg.KillPID > 0 {
		d.fo.startKill(cfg.KillPID, start, cfg.KillAfter)
	}
	var wg sync.WaitGroup
	for s := range cfg.Senders {
		wg.Add(1)
		go func() { defer wg.Done(); d.sender(ctx, s, start, deadline) }()
	}
	wg.Wait()
	sendEnd := time.Now()
	d.waitDrain(ctx)
	prog.Stop()
	d.fill(res, start, sendEnd, cpuTime()-cpu0)
	c := *res.Completeness
	answers := d.answers.Summary()
	res.Answer = &answers
	if cfg.Burst > 0 {
		res.Burst = d.burstStats()
	}
	if d.fo != nil {
		d.clients = d.fo.shutdown()
		res.Failover = d.fo.stats(cfg.KillPID, start)
		if err := d.fo.killErr; err != nil {
			res.fail("%v", err)
		}
		if n := res.Failover.Dropped - res.Failover.Reconnected; n > 0 {
			res.fail("%d client(s) lost their connection and were not back by the end", n)
		}
	}
	d.mu.Lock()
	res.Outcomes = d.outcomes
	res.Errors = d.errs
	d.mu.Unlock()
	if routerErr == nil {
		if v, err := cpuSeconds(ctx, metricsURLs); err == nil && c.Accepted > 0 && len(metricsURLs) > 0 {
			us := (v - routerCPU0) * 1e6 / float64(c.Accepted)
			res.RouterCPUPerMsgUS = &us
		}
	}
	if nodeErr == nil && len(nodeURLs) > 0 {
		if v, err := cpuSeconds(ctx, nodeURLs); err == nil && c.Accepted > 0 {
			us := (v - nodeCPU0) * 1e6 / float64(c.Accepted)
			res.NodeCPUPerMsgUS = &us
		}
	}

	if c.Missing > 0 {
		res.fail("%d accepted message(s) never arrived", c.Missing)
	}
	if c.OutOfOrder > 0 {
		res.fail("%d message(s) arrived out of order", c.OutOfOrder)
	}
	if res.Misrouted > 0 {
		res.fail("%d message(s) arrived at the wrong client", res.Misrouted)
	}
	if c.Accepted == 0 {
		res.fail("no message was accepted")
	}
	for i, cl := range d.clients {
		if d.fo != nil {
			break // counted above
		}
		if cl != nil && cl.Err() != nil {
			res.fail("client %s lost its connection: %v", d.ids[i], cl.Err())
			break
		}
	}
	return res, nil
}

func (d *direct) routerMetricsURLs() []string {
	switch d.cfg.RouterMetrics {
	case "-":
		return nil
	case "":
		return []string{strings.TrimRight(d.cfg.API, "/") + "/metrics"}
	}
	return []string{d.cfg.RouterMetrics}
}

// connect connects and subscribes every client, a few at a time; it stops at the first
// failure.
func (d *direct) connect(ctx context.Context) error {
	d.clients = make([]*mqttclient.Client, d.cfg.Clients)
	idx := make(chan int)
	failed := make(chan struct{})
	var once sync.Once
	var firstErr error
	var wg sync.WaitGroup
	for range min(32, d.cfg.Clients) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				if err := d.connectOne(ctx, i); err != nil {
					once.Do(func() { firstErr = err; close(failed) })
				}
			}
		}()
	}
feed:
	for i := range d.cfg.Clients {
		select {
		case idx <- i:
		case <-failed:
			break feed
		case <-ctx.Done():
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func (d *direct) connectOne(ctx context.Context, i int) error {
	addr := d.cfg.MQTT[i%len(d.cfg.MQTT)]
	if i < d.cfg.DelayClients {
		addr = d.proxies[addr].Addr()
	}
	c, err := d.dialClient(ctx, i, addr)
	if err != nil {
		return err
	}
	d.clients[i] = c
	c.Start()
	if d.fo != nil {
		d.fo.watch(i, c, addr)
	}
	return nil
}

// dialClient connects client i to addr and subscribes it to its inbox; the caller starts it.
func (d *direct) dialClient(ctx context.Context, i int, addr string) (*mqttclient.Client, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := mqttclient.Dial(cctx, addr, mqttclient.Options{
		ID: d.ids[i], Version: d.cfg.MQTTVersion, KeepAlive: 60,
		Username: d.cfg.Username, Password: d.cfg.Password, LocalAddr: sourceFor(d.cfg.SourceIPs, i),
		OnMessage: func(m *mqttclient.Message) { d.receive(i, m) },
	})
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", d.ids[i], err)
	}
	if err := c.Subscribe(cctx, d.cfg.InboxPrefix+d.ids[i], d.cfg.QoS); err != nil {
		c.Close()
		return nil, fmt.Errorf("client %s: %w", d.ids[i], err)
	}
	return c, nil
}

// streamsOf are the checker streams whose messages go to client i.
func (d *direct) streamsOf(i int) []int {
	var s []int
	for l, ln := range d.lanes {
		if ln.client == i {
			s = append(s, l)
		}
	}
	return s
}

func (d *direct) closeClients() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range d.clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); defer func() { <-sem }(); c.Close() }()
	}
	wg.Wait()
}

// receive handles a message on client i's reader goroutine.
func (d *direct) receive(i int, m *mqttclient.Message) {
	now := time.Since(d.epoch)
	st, err := ParseStamp(m.Payload)
	if err != nil {
		d.foreign.Add(1)
		return
	}
	if int(st.Stream) >= len(d.lanes) || d.lanes[st.Stream].client != i {
		d.misrouted.Add(1)
		return
	}
	if d.check.Receive(int(st.Stream), st.Seq) {
		if d.fo != nil {
			d.fo.received(i, int(st.Stream), st.Seq, now)
		}
		d.hist.Record(now - time.Duration(st.SentNS))
		d.lastRecv.Store(int64(now))
		d.lastRecvAt[i].Store(int64(now))
		d.receivedFor[i].Add(1)
	}
}

// startProxies starts a DelayProxy in front of each node a DelayClient connects to.
func (d *direct) startProxies() error {
	d.proxies = map[string]*DelayProxy{}
	for i := range d.cfg.DelayClients {
		addr := d.cfg.MQTT[i%len(d.cfg.MQTT)]
		if d.proxies[addr] != nil {
			continue
		}
		pc := DefaultDelayProxyConfig()
		pc.Target, pc.Delay = addr, d.cfg.Delay
		pc.MaxConns = d.cfg.DelayClients + 8
		p, err := StartDelayProxy(pc)
		if err != nil {
			d.closeProxies()
			return fmt.Errorf("DelayClients: %w", err)
		}
		d.proxies[addr] = p
	}
	return nil
}

func (d *direct) closeProxies() {
	for _, p := range d.proxies {
		_ = p.Close()
	}
}

// waitDrain waits until every accepted message has arrived, or DrainTimeout.
func (d *direct) waitDrain(ctx context.Context) {
	deadline := time.Now().Add(d.cfg.DrainTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if d.check.Received() >= d.check.Accepted() && (d.fo == nil || d.fo.allBack()) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if d.errorCount() > 0 {
		// A refused message may still arrive (its outcome was unknown); give stragglers a
		// moment so they count as unexpected, not as noise in the next run.
		time.Sleep(time.Second)
	}
}

func (d *direct) errorCount() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nerrs
}

func (d *direct) recordError(msg string) {
	d.mu.Lock()
	d.nerrs++
	if len(d.errs) < maxExamples {
		d.errs = append(d.errs, msg)
	}
	d.mu.Unlock()
}
