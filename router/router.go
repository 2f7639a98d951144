// Package router is Switchboard's message router — the seed's GMP. It takes "send this to
// client X" over HTTP and puts the message on the node X is connected to, or in X's mailbox
// when X is offline, its node is gone, or its mailbox already holds messages (so order
// holds). A 2xx answer means the message was delivered or stored: it will not be lost.
//
// Routers keep no state of their own; several may run at once.
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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-mqtt/switchboard/coord"
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
	// DeliverTimeout bounds a direct delivery (the node waits up to its ack timeout for
	// the client's PUBACK); after it the message goes to the mailbox.
	DeliverTimeout time.Duration
	// StoreTimeout bounds each store call.
	StoreTimeout time.Duration
	// WireToken is the shared secret presented to nodes.
	WireToken string
	// WireTLS, if set, is the client side of TLS (mutual, with a certificate) to nodes.
	WireTLS *tls.Config
	// RouteCache is how many clients' routes are remembered (0 disables the cache: every
	// message then reads presence and mailbox depth from the store).
	RouteCache int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		InboxPrefix:    "inbox/",
		DefaultTTL:     24 * time.Hour,
		MaxTTL:         30 * 24 * time.Hour,
		MaxPayload:     256 << 10,
		MailboxLimit:   10_000,
		MaxBatch:       1000,
		DeliverTimeout: 15 * time.Second,
		StoreTimeout:   2 * time.Second,
		RouteCache:     1 << 20,
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
	case c.MaxBatch <= 0:
		return fmt.Errorf("max batch %d must be positive", c.MaxBatch)
	case c.DeliverTimeout <= 0 || c.StoreTimeout <= 0:
		return errors.New("timeouts must be positive")
	case c.RouteCache < 0:
		return fmt.Errorf("route cache %d must not be negative", c.RouteCache)
	}
	return nil
}

// Router routes messages. Its methods are safe for concurrent use.
type Router struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	members  *watcher.Watcher
	pool     *wire.Pool
	lanes    lanes
	routes   routes
	registry *prometheus.Registry
	metrics  *metrics

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a router that routes by the live set in members and the presence and
// mailboxes in st. Close releases it; it does not close st or members.
func New(cfg Config, st store.Store, members *watcher.Watcher, log *slog.Logger) (*Router, error) {
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
		pool:     wire.NewPool(wire.DialOptions{Token: cfg.WireToken, TLS: cfg.WireTLS, Logger: log.With("component", "router-wire")}),
		registry: prometheus.NewRegistry(),
		routes:   routes{max: cfg.RouteCache},
		cancel:   cancel,
	}
	r.metrics = newMetrics(r.registry)
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

// Close stops the router's connections to nodes. Idempotent.
func (r *Router) Close() error {
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
)

// Result is the router's answer for one accepted message.
type Result struct {
	ID        string  `json:"id"`
	Status    Outcome `json:"status"`
	Node      string  `json:"node,omitempty"`
	Depth     int     `json:"mailbox_depth,omitempty"`
	Duplicate bool    `json:"duplicate,omitempty"`
}

// Message is a validated message to send.
type Message struct {
	ID      string
	To      string
	Topic   string
	Payload []byte
	QoS     byte
	TTL     time.Duration
}

// Send routes one message. An error means the message was not accepted (nothing stored):
// it wraps store.ErrMailboxFull, store.ErrStoreFull or store.ErrUnavailable.
func (r *Router) Send(ctx context.Context, m Message) (Result, error) {
	start := time.Now()
	release := r.lanes.acquire(m.To)
	defer release()
	res, err := r.send(ctx, m, start)
	r.metrics.observe(res, err, time.Since(start))
	return res, err
}

func (r *Router) send(ctx context.Context, m Message, now time.Time) (Result, error) {
	if m.ID == "" {
		m.ID = NewID(now)
	}
	sm := store.Message{
		ID: m.ID, To: m.To, Topic: m.Topic, Payload: m.Payload, QoS: m.QoS,
		Accepted: now.UTC(), Expires: now.Add(m.TTL).UTC(),
	}
	// The common case needs no store round trip: the client's route (its node, epoch and
	// session, seen last time with an empty mailbox) is remembered.
	if p, ok := r.routes.get(m.To); ok {
		if member, live := r.members.Live(p.Node, p.Epoch); live {
			res, out := r.deliver(ctx, member, p, sm)
			switch out {
			case done:
				return res, nil
			case uncertain:
				r.routes.forget(m.To)
				return r.queue(ctx, sm)
			}
		}
		r.routes.forget(m.To) // stale: look again
	}
	sctx, cancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
	p, depth, err := r.store.Lookup(sctx, m.To)
	cancel()
	if err != nil {
		return Result{}, fmt.Errorf("look up %s: %w", m.To, err)
	}
	// Direct only when nothing is queued ahead, so order holds across a drain.
	if depth == 0 && p.Online() {
		if member, live := r.members.Live(p.Node, p.Epoch); live {
			res, out := r.deliver(ctx, member, p, sm)
			if out == done {
				r.routes.put(m.To, p)
				return res, nil
			}
		}
	}
	return r.queue(ctx, sm)
}

// queue appends the message to its client's mailbox and wakes the client's node.
func (r *Router) queue(ctx context.Context, sm store.Message) (Result, error) {
	r.routes.forget(sm.To) // the next message must see the mailbox
	sctx, cancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
	ar, err := r.store.Append(sctx, sm, r.cfg.MailboxLimit)
	cancel()
	if err != nil {
		return Result{}, fmt.Errorf("store for %s: %w", sm.To, err)
	}
	if ar.Presence.Online() {
		r.kickDrain(ar.Presence)
	}
	return Result{ID: sm.ID, Status: Queued, Depth: ar.Depth, Duplicate: ar.Duplicate}, nil
}

// outcome is what a direct delivery attempt came to.
type outcome int

const (
	done      outcome = iota // delivered (or expired): answer the sender
	notSent                  // nothing reached the client: looking again is safe
	uncertain                // it may have reached the client: queue it, never resend directly
)

// deliver tries the client's node.
func (r *Router) deliver(ctx context.Context, member coord.Member, p store.Presence, m store.Message) (Result, outcome) {
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DeliverTimeout)
	defer cancel()
	conn, err := r.pool.Get(dctx, member.InternalAddr)
	if err != nil {
		r.log.Debug("node unreachable; queueing", "node", member.ID, "error", err)
		return Result{}, notSent
	}
	res, err := conn.Deliver(dctx, wire.Deliver{
		Epoch: p.Epoch, Client: p.Client, Session: p.Session, ID: m.ID, Topic: m.Topic,
		Payload: m.Payload, QoS: m.QoS, Expires: m.Expires.UnixMilli(),
	})
	if err != nil {
		// The node may have delivered it before the connection broke: queueing it can
		// cause a duplicate, never a loss.
		r.metrics.uncertain.Inc()
		r.log.Debug("delivery outcome unknown; queueing", "node", member.ID, "client", p.Client, "error", err)
		return Result{}, uncertain
	}
	switch res.Status {
	case wire.StatusDelivered:
		return Result{ID: m.ID, Status: Delivered, Node: member.ID}, done
	case wire.StatusExpired:
		return Result{ID: m.ID, Status: Expired, Node: member.ID}, done
	case wire.StatusNotHere, wire.StatusStaleEpoch:
		return Result{}, notSent
	}
	r.metrics.uncertain.Inc()
	return Result{}, uncertain
}

// kickDrain tells the client's node that its mailbox has messages. It is best effort: a node
// that misses it drains when the client next subscribes.
func (r *Router) kickDrain(p store.Presence) {
	member, live := r.members.Live(p.Node, p.Epoch)
	if !live {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn, err := r.pool.Get(ctx, member.InternalAddr)
		if err == nil {
			_, err = conn.Drain(ctx, wire.Drain{Epoch: p.Epoch, Client: p.Client})
		}
		if err != nil {
			r.log.Debug("drain kick failed", "node", member.ID, "client", p.Client, "error", err)
		}
	}()
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

// NewID returns a new message id: time-ordered (16 hex digits of Unix nanoseconds) then 16
// random hex digits.
func NewID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// lanes serialise the messages of one client, so they are routed in the order accepted.
type lanes struct {
	mu sync.Mutex
	m  map[string]*lane
}

type lane struct {
	mu   sync.Mutex
	refs int
}

func (l *lanes) acquire(client string) (release func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*lane{}
	}
	ln := l.m[client]
	if ln == nil {
		ln = &lane{}
		l.m[client] = ln
	}
	ln.refs++
	l.mu.Unlock()
	ln.mu.Lock()
	return func() {
		ln.mu.Unlock()
		l.mu.Lock()
		ln.refs--
		if ln.refs == 0 {
			delete(l.m, client)
		}
		l.mu.Unlock()
	}
}
