// Package router is Switchboard's message router, the way into the cluster for the backends
// that send push messages. It takes "send this to client X" over HTTP and hands the message
// to the node X is connected to, or puts it in X's mailbox when X is offline or its node
// cannot take it. A 2xx answer means the message
// was delivered or stored, and that X's node (if any) knows of it: it will not be lost,
// and nothing accepted after it reaches X before it.
//
// Routers keep no state of their own; any number may run at once, behind a load balancer.
// Order among them holds because the client's node sequences its messages (see package
// lease and docs/ARCHITECTURE.md).
package router

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/lease"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/watcher"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// Config configures a Router. DefaultConfig shows every default.
type Config struct {
	// InboxPrefix: a message without a topic goes to InboxPrefix + its client id.
	InboxPrefix string
	// DefaultTTL is a message's expiry when the request gives none.
	DefaultTTL time.Duration
	// MaxTTL caps a message's expiry.
	MaxTTL time.Duration
	// MaxPayload is the largest payload accepted (bytes); keep it below the nodes' MQTT
	// maximum packet size.
	MaxPayload int
	// MailboxLimit caps each client's mailbox; a full mailbox refuses new messages.
	MailboxLimit int
	// MaxBatch is the most messages in one batch request.
	MaxBatch int
	// MaxBody caps a batch request's body (bytes), whatever MaxBatch and MaxPayload allow.
	MaxBody int64
	// MaxWait is how long a request waits, by default, for a message sent to an online
	// client to be acknowledged; after it the client's node queues the message in its
	// mailbox and the answer is `queued` (a request's max_wait overrides it).
	MaxWait time.Duration
	// MaxMaxWait caps a request's max_wait.
	MaxMaxWait time.Duration
	// AnswerGrace is how much longer than the max wait the router waits for a node's
	// answer (the node may be storing the message) before it takes the outcome as unknown
	// and queues the message itself (a duplicate is possible then, never a loss).
	AnswerGrace time.Duration
	// StoreTimeout bounds each store call.
	StoreTimeout time.Duration
	// DialTimeout bounds connecting to a node, the wire hello included: a node that
	// accepts and never answers costs a pass this long once, not once per message.
	DialTimeout time.Duration
	// WireToken is the shared secret presented to nodes.
	WireToken string
	// WireTLS, if set, is the client side of TLS (mutual, with a certificate) to nodes.
	WireTLS *tls.Config
	// RouteCache is how many clients' routes are remembered (0 disables the cache: every
	// message then reads the client's presence from the store).
	RouteCache int
	// ClockSkew shifts the router's wall clock (message ids, accepted stamps), for tests
	// that show a machine with a wrong clock cannot expire an accepted message early: no
	// expiry is judged on it.
	ClockSkew time.Duration
	// HTTP bounds the API's connections (see HTTPServer).
	HTTP HTTPConfig
	// Fanout bounds fan-out to lists and groups, and runs group jobs (see fanout.go).
	Fanout FanoutConfig
	// Receipts configures delivery receipts, their sweeper, webhook and event stream (see
	// receipts.go).
	Receipts ReceiptsConfig
	// MaxCollapseKeys caps the distinct collapse keys one client's mailbox holds.
	MaxCollapseKeys int
	// SchedulePoll is how often the router looks for scheduled messages whose time has
	// come (see schedule.go); ScheduleLease how long it holds those it took.
	SchedulePoll, ScheduleLease time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		InboxPrefix:  "inbox/",
		DefaultTTL:   24 * time.Hour,
		MaxTTL:       30 * 24 * time.Hour,
		MaxPayload:   256 << 10,
		MailboxLimit: 10_000,
		MaxBatch:     1000,
		MaxBody:      64 << 20,
		MaxWait:      time.Second,
		MaxMaxWait:   30 * time.Second,
		AnswerGrace:  5 * time.Second,
		StoreTimeout: 2 * time.Second,
		DialTimeout:  wire.DefaultDialOptions().DialTimeout,
		RouteCache:   1 << 20,
		HTTP:         DefaultHTTPConfig(),
		Fanout:       DefaultFanoutConfig(),
		Receipts:     DefaultReceiptsConfig(),

		MaxCollapseKeys: 100,
		SchedulePoll:    250 * time.Millisecond,
		ScheduleLease:   30 * time.Second,
	}
}

// Validate checks the configuration; errors name the field.
func (c Config) Validate() error {
	switch {
	case c.InboxPrefix == "":
		return errors.New("inbox prefix is empty")
	case c.DefaultTTL <= 0 || c.MaxTTL < c.DefaultTTL:
		return fmt.Errorf("default ttl %v must be positive and at most the max ttl %v", c.DefaultTTL, c.MaxTTL)
	case c.MaxPayload <= 0:
		return fmt.Errorf("max payload %d must be positive", c.MaxPayload)
	case c.MailboxLimit <= 0:
		return fmt.Errorf("mailbox limit %d must be positive", c.MailboxLimit)
	case c.MaxBody < int64(c.MaxPayload)*4/3+64<<10:
		return fmt.Errorf("max body %d bytes must hold at least one message of the max payload %d", c.MaxBody, c.MaxPayload)
	case c.MaxBatch <= 0 || c.MaxBatch > wire.MaxMsgs:
		return fmt.Errorf("max batch %d must be between 1 and %d", c.MaxBatch, wire.MaxMsgs)
	case c.MaxWait <= 0 || c.MaxMaxWait < c.MaxWait:
		return fmt.Errorf("max wait %v must be positive and at most the largest max wait %v", c.MaxWait, c.MaxMaxWait)
	case c.MaxMaxWait > time.Duration(1<<32-1)*time.Millisecond:
		return fmt.Errorf("largest max wait %v is too long", c.MaxMaxWait)
	case c.AnswerGrace <= 0 || c.StoreTimeout <= 0:
		return errors.New("answer grace and store timeout must be positive")
	case c.DialTimeout <= 0:
		return fmt.Errorf("dial timeout %v must be positive", c.DialTimeout)
	case c.RouteCache < 0:
		return fmt.Errorf("route cache %d must not be negative", c.RouteCache)
	}
	if err := c.Fanout.validate(); err != nil {
		return err
	}
	switch {
	case c.MaxCollapseKeys <= 0:
		return fmt.Errorf("MaxCollapseKeys %d: must be positive", c.MaxCollapseKeys)
	case c.SchedulePoll <= 0:
		return fmt.Errorf("SchedulePoll %v: must be positive", c.SchedulePoll)
	case c.ScheduleLease <= 3*c.StoreTimeout:
		return fmt.Errorf("ScheduleLease %v: must be longer than three store timeouts (%v): a router takes, queues and forgets due messages within it", c.ScheduleLease, 3*c.StoreTimeout)
	}
	if err := c.Receipts.validate(); err != nil {
		return err
	}
	return c.validateHTTP()
}

// Router routes messages. Its methods are safe for concurrent use.
type Router struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	members  LiveSet
	pool     *wire.Pool
	teller   *lease.Teller
	routes   routes
	registry *prometheus.Registry
	metrics  *metrics

	jobs *jobRunner // nil when the store keeps no jobs

	// patterns matches a request to its API route, for the scope of a token.
	patterns     *http.ServeMux
	patternsOnce sync.Once

	// receipts is the store's receipts, nil when it keeps none or Config.Receipts turns
	// them off: Message.Receipt is then ignored.
	receipts store.Receipts
	holder   string        // this router, in consumer leases
	streams  chan struct{} // a slot per open event stream
	ending   chan struct{} // closed by EndStreams: event streams end
	endOnce  sync.Once

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// LiveSet is the live node set a router routes by; *watcher.Watcher provides it. Its
// methods are called concurrently, from every request.
type LiveSet interface {
	// Lookup, Members and Changed serve the router's lease.Teller.
	lease.Members
	// Live returns node's member data if it is live under exactly epoch.
	Live(node string, epoch int64) (coord.Member, bool)
	// Subscribe returns a stream of joins and leaves from now on; the router closes it.
	Subscribe() *watcher.Subscription
}

var _ LiveSet = (*watcher.Watcher)(nil)

// New returns a router that routes by the live set in members and the presence and
// mailboxes in st. Close releases it; it does not close st or members.
func New(cfg Config, st store.Store, members LiveSet, log *slog.Logger) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Router{
		cfg:      cfg,
		log:      log.With("component", "router"),
		store:    st,
		members:  members,
		pool:     wire.NewPool(wire.DialOptions{Token: cfg.WireToken, TLS: cfg.WireTLS, DialTimeout: cfg.DialTimeout, Logger: log.With("component", "router-wire")}),
		registry: prometheus.NewRegistry(),
		routes:   routes{max: cfg.RouteCache},
		cancel:   cancel,
		holder:   newHolder(),
		streams:  make(chan struct{}, cfg.Receipts.MaxStreams),
		ending:   make(chan struct{}),
	}
	if rs, ok := st.(store.Receipts); ok && cfg.Receipts.Enabled {
		r.receipts = rs
	}
	r.metrics = newMetrics(r.registry)
	r.teller = lease.NewTeller(lease.TellerConfig{MailboxLimit: cfg.MailboxLimit}, st, members, r.pool, r.log)
	r.startJobs(ctx)
	r.startReceipts(ctx)
	r.startSchedule(ctx)
	sub := members.Subscribe()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer sub.Close()
		r.followLeaves(ctx, sub)
	}()
	return r, nil
}

// followLeaves drops the connection to a node that leaves the live set: every delivery in
// flight to it fails at once and goes to the mailbox.
func (r *Router) followLeaves(ctx context.Context, sub *watcher.Subscription) {
	for {
		ev, ok := sub.Next(ctx)
		if !ok {
			return
		}
		if ev.Kind == watcher.Leave {
			r.pool.Drop(ev.Member.InternalAddr)
		}
	}
}

// Close stops the router's connections to nodes, its event streams and its background
// loops. Idempotent.
func (r *Router) Close() error {
	r.EndStreams()
	r.cancel()
	r.wg.Wait()
	return r.pool.Close()
}

// Registry is the router's Prometheus registry.
func (r *Router) Registry() *prometheus.Registry { return r.registry }

// Outcome is where a message went.
type Outcome string

const (
	// Delivered: the client acknowledged it (QoS 1) or it was written to the client (QoS 0).
	Delivered Outcome = "delivered"
	// Queued: it is in the client's mailbox and will be delivered when the client is ready.
	Queued Outcome = "queued"
	// Expired: it expired before delivery began and will never be delivered.
	Expired Outcome = "expired"
	// Scheduled: it waits in the store for its deliver_at, and is queued then.
	Scheduled Outcome = "scheduled"
)

// Result is the router's answer for one accepted message.
type Result struct {
	ID        string  `json:"id"`
	Status    Outcome `json:"status"`
	Node      string  `json:"node,omitempty"`
	Depth     int     `json:"mailbox_depth,omitempty"`
	Duplicate bool    `json:"duplicate,omitempty"`
	// Collapsed is the id of the queued message with the same collapse key this one
	// replaced.
	Collapsed string `json:"collapsed,omitempty"`
	// DeliverAt is when a scheduled message becomes deliverable.
	DeliverAt time.Time `json:"deliver_at,omitzero"`
}

// Message is a validated message to send.
type Message struct {
	ID      string
	To      string
	Topic   string
	Payload []byte
	QoS     byte
	TTL     time.Duration
	// Receipt asks for a terminal receipt (see receipts.go); ignored when the router keeps
	// none.
	Receipt bool
	// CollapseKey makes the message replace the client's queued message with the same key
	// (see schedule.go: such a message always goes through the mailbox).
	CollapseKey string
	// DeliverAt, when later than now, holds the message back until then (schedule.go).
	DeliverAt time.Time
	// Priority high puts the message in its mailbox's high-priority lane, which the
	// client's node drains before the normal one (schedule.go).
	Priority store.Priority
}

// Send routes one message with the default max wait. An error means the message was not
// accepted: it wraps store.ErrMailboxFull, store.ErrStoreFull (nothing stored) or
// store.ErrUnavailable (maybe stored, not acknowledged; a retry with the same id is
// safe).
func (r *Router) Send(ctx context.Context, m Message) (Result, error) {
	out := r.Route(ctx, []Message{m}, 0)
	return out[0].Result, out[0].Err
}

// Outcome of one message of Route: a Result, or Err when it was not accepted.
type Routed struct {
	Result
	Err error
}

// Route routes messages: those to different clients in parallel, those to one client in
// the order given (they travel to its node in one frame, and its node takes all or none).
// maxWait bounds how long a message may wait for the client's acknowledgement before it
// is queued and answered queued (0: the default). The answer for message i is out[i].
func (r *Router) Route(ctx context.Context, msgs []Message, maxWait time.Duration) []Routed {
	start := time.Now()
	// The wall clock names and stamps messages; durations are measured on the monotonic
	// clock (start), which the skew must not touch.
	wall := start.Add(r.cfg.ClockSkew).Round(0)
	if maxWait <= 0 {
		maxWait = r.cfg.MaxWait
	}
	maxWait = min(maxWait, r.cfg.MaxMaxWait)
	out := make([]Routed, len(msgs))
	sms := make([]store.Message, len(msgs))
	for i, m := range msgs {
		if m.ID == "" {
			m.ID = NewID(wall)
		}
		sms[i] = store.Message{
			ID: m.ID, To: m.To, Topic: m.Topic, Payload: m.Payload, QoS: m.QoS,
			Accepted: wall.UTC(), TTL: m.TTL, Receipt: m.Receipt && r.receipts != nil,
			CollapseKey: m.CollapseKey, Priority: m.Priority,
		}
		if m.CollapseKey != "" {
			sms[i].CollapseLimit = r.cfg.MaxCollapseKeys
		}
	}
	groups, queue, later := r.pathsOf(msgs, sms, wall)
	if len(later) > 0 {
		r.scheduleAll(ctx, later, msgs, sms, out, wall, start)
	}
	// First attempt: every client with a route goes straight to its node.
	retry, direct := r.deliverGroups(ctx, groups, sms, out, maxWait, start, true)
	queue = append(queue, direct...)
	slices.Sort(queue)
	if len(retry) > 0 {
		// Refused before anything was sent (not there any more, or its node cannot take
		// it): look again in the store, and try once more where the client is now.
		again, more := r.deliverGroups(ctx, regroup(retry, sms), sms, out, maxWait, start, false)
		queue = append(append(queue, again...), more...)
		slices.Sort(queue)
	}
	if len(queue) > 0 {
		r.queueAll(ctx, queue, sms, out, start)
	}
	// Before the answer: a receipt the router owes is durable before the sender hears 2xx.
	r.finishRouted(ctx, sms, out)
	d := time.Since(start)
	for i := range out {
		r.metrics.observe(out[i].Result, out[i].Err, d)
	}
	return out
}

// group is one client's messages of a request, in request order.
type group struct {
	client string
	idx    []int
}

func groupByClient(sms []store.Message) []group {
	pos := map[string]int{}
	var gs []group
	for i, m := range sms {
		k, ok := pos[m.To]
		if !ok {
			k = len(gs)
			pos[m.To] = k
			gs = append(gs, group{client: m.To})
		}
		gs[k].idx = append(gs[k].idx, i)
	}
	return gs
}

// regroup groups message indexes (already in request order) by client.
func regroup(idx []int, sms []store.Message) []group {
	sub := make([]store.Message, len(idx))
	for k, i := range idx {
		sub[k] = sms[i]
	}
	gs := groupByClient(sub)
	for g := range gs {
		for k, j := range gs[g].idx {
			gs[g].idx[k] = idx[j]
		}
	}
	return gs
}

// ErrRejected means the client's node refused the message for good: the client cannot
// take it (larger than its maximum packet size). It was not accepted.
var ErrRejected = errors.New("rejected by the client's node")

// errNoAnswer: a node did not answer within max wait plus the grace.
var errNoAnswer = errors.New("no answer from the node in time")

// deliverGroups sends each group to its client's node and waits for the answers. It
// fills out for what is settled and returns, in request order, the indexes of messages
// refused before they were sent (retry: worth a fresh look-up) and of messages to queue
// (offline, or an outcome that is unknown: those are never sent directly again). cached
// says whether routes may come from the cache (the first attempt) or must be read from
// the store.
// dialed is one node's connection, or why there is none.
type dialed struct {
	conn *wire.Conn
	err  error
}

// dialAll gets a connection to every live node the routes name, all at once: a node that
// does not answer costs a request one dial timeout, not one per client it holds.
func (r *Router) dialAll(ctx context.Context, groups []group, routes []store.Presence) map[string]dialed {
	addrs := map[string]dialed{}
	for gi := range groups {
		p := routes[gi]
		if p.Client == "" || !p.Online() {
			continue
		}
		if m, live := r.members.Live(p.Node, p.Epoch); live {
			addrs[m.InternalAddr] = dialed{}
		}
	}
	if len(addrs) == 1 {
		for addr := range addrs {
			conn, err := r.pool.Get(ctx, addr)
			addrs[addr] = dialed{conn, err}
		}
		return addrs
	}
	keys := make([]string, 0, len(addrs))
	for addr := range addrs {
		keys = append(keys, addr)
	}
	got := make([]dialed, len(keys))
	var wg sync.WaitGroup
	for i, addr := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := r.pool.Get(ctx, addr)
			got[i] = dialed{conn, err}
		}()
	}
	wg.Wait()
	for i, addr := range keys {
		addrs[addr] = got[i]
	}
	return addrs
}

func (r *Router) deliverGroups(ctx context.Context, groups []group, sms []store.Message, out []Routed, maxWait time.Duration, start time.Time, cached bool) (retry, toQueue []int) {
	type sent struct {
		g      group
		p      store.Presence
		member coord.Member
		res    []wire.Result
		errs   []error
		got    []bool
	}
	routes := r.routesFor(ctx, groups, out, cached)
	refuse := func(idx []int) {
		if cached {
			retry = append(retry, idx...)
		} else {
			toQueue = append(toQueue, idx...)
		}
	}
	// One Deliver per client, all in flight at once; every answer is counted under mu, and
	// done is closed when the last one has come (left starts at 1 for the sending itself).
	var mu sync.Mutex
	left := 1
	done := make(chan struct{})
	answered := func() {
		if left--; left == 0 {
			close(done)
		}
	}
	var list []*sent
	conns := r.dialAll(ctx, groups, routes)
	now := time.Now() // after the dials: their time counts against the messages' TTLs
	// One allocation for every group's answers: each group takes its slice.
	total := 0
	for _, g := range groups {
		total += len(g.idx)
	}
	allRes, allErrs, allGot := make([]wire.Result, total), make([]error, total), make([]bool, total)
	sents := make([]sent, 0, len(groups))
	for gi, g := range groups {
		p, ok := routes[gi], routes[gi].Client != ""
		if !ok {
			continue // the look-up failed: out says why
		}
		member, live := r.members.Live(p.Node, p.Epoch)
		if !p.Online() || !live {
			r.routes.forget(g.client)
			toQueue = append(toQueue, g.idx...)
			continue
		}
		dialed := conns[member.InternalAddr]
		conn, err := dialed.conn, dialed.err
		if err != nil {
			r.log.Debug("node unreachable; queueing", "node", member.ID, "error", err)
			r.routes.forget(g.client)
			refuse(g.idx)
			continue
		}
		n := len(g.idx)
		sents = append(sents, sent{g: g, p: p, member: member, res: allRes[:n:n], errs: allErrs[:n:n], got: allGot[:n:n]})
		allRes, allErrs, allGot = allRes[n:], allErrs[n:], allGot[n:]
		s := &sents[len(sents)-1]
		d := wire.Deliver{Epoch: p.Epoch, Client: p.Client, Session: p.Session, MaxWait: uint32(maxWait / time.Millisecond),
			Msgs: make([]wire.Msg, 0, len(g.idx))}
		for _, i := range g.idx {
			m := sms[i]
			ttl := m.TTL - now.Sub(start) // the time spent here counts against it
			// The node records the receipt of what it delivers or lets expire.
			d.Msgs = append(d.Msgs, wire.Msg{ID: m.ID, Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, TTL: ttl.Milliseconds(), Receipt: m.Receipt})
		}
		list = append(list, s)
		mu.Lock()
		left += len(g.idx)
		mu.Unlock()
		conn.Deliver(d, func(k int, res wire.Result, err error) {
			mu.Lock()
			defer mu.Unlock()
			if k < 0 || k >= len(s.got) || s.got[k] {
				return
			}
			s.got[k] = true
			s.res[k], s.errs[k] = res, err
			answered()
		})
	}
	mu.Lock()
	answered()
	mu.Unlock()
	if len(list) > 0 {
		timer := time.NewTimer(maxWait + r.cfg.AnswerGrace)
		select {
		case <-done:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
	}
	mu.Lock()
	for _, s := range list {
		for k := range s.got {
			if !s.got[k] {
				s.got[k] = true // a late answer is ignored
				s.errs[k] = errNoAnswer
			}
		}
	}
	mu.Unlock()
	for _, s := range list {
		refused := false
		for k, i := range s.g.idx {
			res, err := s.res[k], s.errs[k]
			switch {
			case err != nil:
				// The node may have delivered it before the connection broke, or may still:
				// queueing it can cause a duplicate, never a loss.
				r.metrics.uncertain.Inc()
				r.log.Debug("delivery outcome unknown; queueing", "node", s.member.ID, "client", s.g.client, "error", err)
				toQueue = append(toQueue, i)
				refused = true
			case res.Status == wire.StatusDelivered:
				out[i].Result = Result{ID: sms[i].ID, Status: Delivered, Node: s.member.ID}
			case res.Status == wire.StatusQueued:
				out[i].Result = Result{ID: sms[i].ID, Status: Queued, Node: s.member.ID}
			case res.Status == wire.StatusExpired:
				out[i].Result = Result{ID: sms[i].ID, Status: Expired, Node: s.member.ID}
			case res.Status == wire.StatusRejected:
				out[i].Err = fmt.Errorf("%w: %s", ErrRejected, res.Detail)
			case res.Status == wire.StatusNotHere, res.Status == wire.StatusStaleEpoch:
				if cached {
					retry = append(retry, i)
				} else {
					toQueue = append(toQueue, i)
				}
				refused = true
			default:
				r.metrics.uncertain.Inc()
				toQueue = append(toQueue, i)
				refused = true
			}
		}
		if refused {
			r.routes.forget(s.g.client)
		} else {
			r.routes.put(s.g.client, s.p)
		}
	}
	slices.Sort(retry)
	slices.Sort(toQueue)
	return retry, toQueue
}

// routesFor finds each group's route: from the cache when cached allows, else from the
// store (look-ups run concurrently, a bounded number at a time). A group whose look-up
// failed gets a zero presence and its messages' errors in out.
func (r *Router) routesFor(ctx context.Context, groups []group, out []Routed, cached bool) []store.Presence {
	routes := make([]store.Presence, len(groups))
	var need []int
	for gi, g := range groups {
		if cached {
			if p, ok := r.routes.get(g.client); ok {
				routes[gi] = p
				continue
			}
		}
		need = append(need, gi)
	}
	if len(need) == 0 {
		return routes
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, 64)
	for _, gi := range need {
		g := groups[gi]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			lctx, cancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
			p, _, err := r.store.Lookup(lctx, g.client)
			cancel()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				for _, i := range g.idx {
					out[i].Err = fmt.Errorf("look up %s: %w", g.client, err)
				}
				return
			}
			p.Client = g.client // an offline client has a zero presence: name it, so the caller tells it from a failed look-up
			routes[gi] = p
		}()
	}
	wg.Wait()
	return routes
}

// queueAll puts the messages at idx (in request order) in their mailboxes, and tells the
// nodes of clients that are connected somewhere.
func (r *Router) queueAll(ctx context.Context, idx []int, sms []store.Message, out []Routed, start time.Time) {
	batch := make([]store.Message, len(idx))
	now := time.Now()
	for k, i := range idx {
		batch[k] = sms[i]
		batch[k].TTL -= now.Sub(start)
	}
	// Long enough for the store and, if a client's node cannot be told directly, for its
	// delivery lease to run out.
	qctx, cancel := context.WithTimeout(ctx, 2*r.cfg.StoreTimeout+lease.MaxTellWait(r.members.Members()))
	defer cancel()
	var res []store.AppendResult
	var err error
	expired := make([]bool, len(batch))
	live := batch[:0:0]
	var liveIdx []int
	for k, m := range batch {
		if m.TTL <= 0 {
			expired[k] = true
			continue
		}
		live = append(live, m)
		liveIdx = append(liveIdx, k)
	}
	if len(live) > 0 {
		res, err = r.teller.Queue(qctx, "", live)
	}
	for k, i := range idx {
		if expired[k] {
			out[i].Result = Result{ID: sms[i].ID, Status: Expired}
		}
	}
	for j, k := range liveIdx {
		i := idx[k]
		switch {
		case err != nil:
			out[i].Err = fmt.Errorf("store for %s: %w", sms[i].To, err)
		case res[j].Err != nil:
			out[i].Err = fmt.Errorf("store for %s: %w", sms[i].To, res[j].Err)
		default:
			out[i].Result = Result{ID: sms[i].ID, Status: Queued, Depth: res[j].Depth, Duplicate: res[j].Duplicate,
				Collapsed: res[j].Collapsed}
		}
	}
}

// Client is what the router knows of a client.
type Client struct {
	Client string    `json:"client"`
	Online bool      `json:"online"`
	Node   string    `json:"node,omitempty"`
	Epoch  int64     `json:"epoch,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	Depth  int       `json:"mailbox_depth"`
}

// Lookup reports where a client is and how many messages wait for it.
func (r *Router) Lookup(ctx context.Context, client string) (Client, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
	defer cancel()
	p, depth, err := r.store.Lookup(ctx, client)
	if err != nil {
		return Client{}, err
	}
	c := Client{Client: client, Depth: depth}
	if _, live := r.members.Live(p.Node, p.Epoch); p.Online() && live {
		c.Online, c.Node, c.Epoch, c.Since = true, p.Node, p.Epoch, p.Since
	}
	return c, nil
}

// NewID returns a new message id: time-ordered (16 hex digits of Unix nanoseconds), then
// 8 hex digits chosen at random once per process, then a counter of 8 hex digits: unique
// across routers without a random read per message.
func NewID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	binary.BigEndian.PutUint32(b[8:12], idInstance)
	binary.BigEndian.PutUint32(b[12:], idCounter.Add(1))
	return hex.EncodeToString(b[:])
}

var (
	idInstance = func() uint32 {
		var b [4]byte
		_, _ = rand.Read(b[:])
		return binary.BigEndian.Uint32(b[:])
	}()
	idCounter atomic.Uint32
)
