package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
	// Each client belongs to one sender, so its messages are accepted in sequence order.
	Senders int `json:"senders"`
	// Count is how many messages to send in all; 0 sends for Duration.
	Count int `json:"count,omitempty"`
	// Duration bounds the sending when Count is 0.
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
		MQTTVersion:  5,
		Prefix:       "bench",
		InboxPrefix:  "inbox/",
		DrainTimeout: 30 * time.Second,
	}
}

// Validate checks the configuration; errors name the flag.
func (c DirectConfig) Validate() error {
	switch {
	case c.API == "":
		return errors.New("--api is required")
	case len(c.MQTT) == 0:
		return errors.New("--mqtt is required")
	case c.Clients < 1:
		return fmt.Errorf("--clients %d: want at least 1", c.Clients)
	case c.Senders < 1:
		return fmt.Errorf("--senders %d: want at least 1", c.Senders)
	case c.Count < 0:
		return fmt.Errorf("--count %d: must not be negative", c.Count)
	case c.Count == 0 && c.Duration <= 0:
		return errors.New("give --count or a positive --duration")
	case c.Rate < 0:
		return fmt.Errorf("--rate %v: must not be negative", c.Rate)
	case c.Batch < 1 || c.Batch > 1000:
		return fmt.Errorf("--batch %d: want 1 to 1000", c.Batch)
	case c.QoS > 1:
		return fmt.Errorf("--qos %d: want 0 or 1", c.QoS)
	case c.Size < stampLen || c.Size > 256<<10:
		return fmt.Errorf("--size %d: want %d to %d bytes", c.Size, stampLen, 256<<10)
	case c.MQTTVersion != 4 && c.MQTTVersion != 5:
		return fmt.Errorf("--mqtt-version %d: want 4 or 5", c.MQTTVersion)
	case c.DrainTimeout <= 0:
		return fmt.Errorf("--drain-timeout %v: must be positive", c.DrainTimeout)
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
	clients []*Client
	http    *http.Client

	foreign atomic.Int64 // payloads without a stamp

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
	cfg.Senders = min(cfg.Senders, cfg.Clients)
	d := &direct{
		cfg:      cfg,
		tally:    tally{check: NewChecker(cfg.Clients)},
		outcomes: map[string]int64{},
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
	defer d.closeClients()
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
	if cfg.Count == 0 {
		deadline = start.Add(cfg.Duration)
	}
	var accMeter, recvMeter rateMeter
	prog := startProgress(cfg.Progress, time.Second, func(el time.Duration) string {
		acc, recv := d.check.Accepted(), d.check.Received()
		return fmt.Sprintf("direct %5.1fs  accepted %d (%.0f/s)  delivered %d (%.0f/s)  errors %d",
			el.Seconds(), acc, accMeter.rate(acc), recv, recvMeter.rate(recv), d.errorCount())
	})
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
	d.clients = make([]*Client, d.cfg.Clients)
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
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := Dial(cctx, addr, ClientOptions{
		ID: d.ids[i], Version: d.cfg.MQTTVersion, KeepAlive: 60,
		Username: d.cfg.Username, Password: d.cfg.Password, LocalAddr: sourceFor(d.cfg.SourceIPs, i),
		OnMessage: func(m *Message) { d.receive(i, m) },
	})
	if err != nil {
		return fmt.Errorf("client %s: %w", d.ids[i], err)
	}
	d.clients[i] = c
	if err := c.Subscribe(cctx, d.cfg.InboxPrefix+d.ids[i], d.cfg.QoS); err != nil {
		return fmt.Errorf("client %s: %w", d.ids[i], err)
	}
	c.Start()
	return nil
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
func (d *direct) receive(i int, m *Message) {
	now := time.Since(d.epoch)
	st, err := ParseStamp(m.Payload)
	if err != nil {
		d.foreign.Add(1)
		return
	}
	if int(st.Stream) != i {
		d.misrouted.Add(1)
		return
	}
	if d.check.Receive(i, st.Seq) {
		d.hist.Record(now - time.Duration(st.SentNS))
		d.lastRecv.Store(int64(now))
	}
}

// waitDrain waits until every accepted message has arrived, or DrainTimeout.
func (d *direct) waitDrain(ctx context.Context) {
	deadline := time.Now().Add(d.cfg.DrainTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if d.check.Received() >= d.check.Accepted() {
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

// sender posts messages for its clients (every Senders-th client, starting at s) until
// its share of Count is sent, the deadline passes (requests in flight then finish) or ctx
// ends.
func (d *direct) sender(ctx context.Context, s int, start, deadline time.Time) {
	cfg := d.cfg
	var owned []int
	for i := s; i < cfg.Clients; i += cfg.Senders {
		owned = append(owned, i)
	}
	seqs := make([]uint32, len(owned))
	quota := -1
	if cfg.Count > 0 {
		quota = cfg.Count / cfg.Senders
		if s < cfg.Count%cfg.Senders {
			quota++
		}
	}
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Batch*cfg.Senders) / cfg.Rate)
	}
	payload := newPayload(cfg.Size)
	type item struct {
		client int
		seq    uint32
	}
	batch := make([]item, 0, cfg.Batch)
	var body, resp bytes.Buffer
	next, sent := 0, 0
	path := "/v1/messages"
	if cfg.Batch > 1 {
		path += "/batch"
	}
	// The lean client for http://, net/http for anything else.
	hc, err := newHTTPConn(cfg.API, cfg.Token, 60*time.Second)
	if err != nil {
		hc = nil
	} else {
		defer hc.Close()
	}
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	consecutiveErrs := 0
	for k := 0; quota < 0 || sent < quota; k++ {
		var stamp time.Duration
		if interval > 0 {
			// Senders start staggered so their requests interleave evenly.
			due := start.Add(time.Duration(k)*interval + time.Duration(s)*interval/time.Duration(cfg.Senders))
			if !deadline.IsZero() && due.After(deadline) {
				return
			}
			if wait := time.Until(due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			stamp = due.Sub(d.epoch)
		} else {
			stamp = time.Since(d.epoch)
		}
		if ctx.Err() != nil || !deadline.IsZero() && time.Now().After(deadline) {
			return
		}
		n := cfg.Batch
		if quota >= 0 {
			n = min(n, quota-sent)
		}
		batch = batch[:0]
		body.Reset()
		if cfg.Batch > 1 {
			body.WriteString(`{"messages":[`)
		}
		for j := range n {
			o := next
			next = (next + 1) % len(owned)
			it := item{owned[o], seqs[o]}
			seqs[o]++
			batch = append(batch, it)
			writeStamp(payload, Stamp{SentNS: int64(stamp), Stream: uint32(it.client), Seq: it.seq})
			if j > 0 {
				body.WriteByte(',')
			}
			body.WriteString(`{"to":"`)
			body.WriteString(d.ids[it.client])
			body.WriteString(`","payload":"`)
			body.Write(payload)
			body.WriteString(`","qos":`)
			body.WriteString(strconv.Itoa(int(cfg.QoS)))
			body.WriteByte('}')
		}
		if cfg.Batch > 1 {
			body.WriteString(`]}`)
		}
		sent += n
		d.sent.Add(int64(n))
		codes, err := d.post(ctx, hc, path, body.Bytes(), &resp, n)
		if err != nil {
			if ctx.Err() != nil {
				// Interrupted mid-request: the outcome is unknown.
				for _, it := range batch {
					d.check.Refuse(it.client, it.seq)
				}
				return
			}
			d.recordError(err.Error())
			consecutiveErrs++
			if consecutiveErrs > 100 {
				time.Sleep(10 * time.Millisecond)
			}
		} else {
			consecutiveErrs = 0
		}
		for j, it := range batch {
			if err == nil && codes[j] == http.StatusOK {
				d.check.Accept(it.client, it.seq)
			} else {
				d.check.Refuse(it.client, it.seq)
			}
		}
	}
}

// batchAnswer is the part of a batch answer the sender reads.
type batchAnswer struct {
	Results []struct {
		Code   int    `json:"code"`
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"results"`
}

// do sends one request, through hc when there is one, and reads the answer into resp.
func (d *direct) do(ctx context.Context, hc *httpConn, path string, body []byte, resp *bytes.Buffer) (int, error) {
	if hc != nil {
		return hc.Post(ctx, path, body, resp)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(d.cfg.API, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if d.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+d.cfg.Token)
	}
	r, err := d.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer r.Body.Close()
	resp.Reset()
	if _, err = resp.ReadFrom(io.LimitReader(r.Body, 64<<20)); err != nil {
		return 0, fmt.Errorf("read answer: %w", err)
	}
	return r.StatusCode, nil
}

// post sends one request and returns a status code per message.
func (d *direct) post(ctx context.Context, hc *httpConn, path string, body []byte, resp *bytes.Buffer, n int) ([]int, error) {
	code, err := d.do(ctx, hc, path, body, resp)
	if err != nil {
		return nil, err
	}
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	codes := make([]int, n)
	if d.cfg.Batch == 1 {
		if code == http.StatusOK {
			codes[0] = http.StatusOK
			d.countOutcome(resp.Bytes())
			return codes, nil
		}
		return nil, fmt.Errorf("router answered %s: %s", status, strings.TrimSpace(truncate(resp.String(), 200)))
	}
	if code != http.StatusOK && code != http.StatusMultiStatus {
		return nil, fmt.Errorf("router answered %s: %s", status, strings.TrimSpace(truncate(resp.String(), 200)))
	}
	var a batchAnswer
	if err := json.Unmarshal(resp.Bytes(), &a); err != nil {
		return nil, fmt.Errorf("decode batch answer: %w", err)
	}
	if len(a.Results) != n {
		return nil, fmt.Errorf("batch answer has %d results for %d messages", len(a.Results), n)
	}
	d.mu.Lock()
	for i, it := range a.Results {
		codes[i] = it.Code
		if it.Code == http.StatusOK {
			d.outcomes[it.Status]++
		}
	}
	d.mu.Unlock()
	for _, it := range a.Results {
		if it.Code != http.StatusOK {
			d.recordError(fmt.Sprintf("batch item refused (%d): %s", it.Code, it.Error))
		}
	}
	return codes, nil
}

var (
	statusDelivered = []byte(`"status":"delivered"`)
	statusQueued    = []byte(`"status":"queued"`)
)

func (d *direct) countOutcome(answer []byte) {
	k := "other"
	switch {
	case bytes.Contains(answer, statusDelivered):
		k = "delivered"
	case bytes.Contains(answer, statusQueued):
		k = "queued"
	}
	d.mu.Lock()
	d.outcomes[k]++
	d.mu.Unlock()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
