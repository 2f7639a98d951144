package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/mqttclient"
)

// PubSubConfig configures a classic publish/subscribe benchmark against any MQTT broker
// or cluster: pairs of one publisher and one subscriber, each pair on its own topic.
// DefaultPubSubConfig shows every default.
//
// Where the clients connect: pair i's subscriber to subscribers' list[i % len] and its
// publisher to publishers' list[(i + k) % len], where the lists are SubMQTT and PubMQTT
// (each MQTT when empty) and k is 1 with CrossNode, 0 without. So one address puts every
// client on one broker; a cluster's nodes in MQTT spread the pairs over them, each pair on
// one node; and CrossNode with them puts every publisher on the node after its
// subscriber's, so each message crosses from one node to another.
type PubSubConfig struct {
	// MQTT are the brokers' addresses, for subscribers and publishers alike unless SubMQTT
	// or PubMQTT is set.
	MQTT []string `json:"mqtt,omitempty"`
	// SubMQTT, when not empty, are the subscribers' brokers instead of MQTT.
	SubMQTT []string `json:"sub_mqtt,omitempty"`
	// PubMQTT, when not empty, are the publishers' brokers instead of MQTT.
	PubMQTT []string `json:"pub_mqtt,omitempty"`
	// CrossNode moves each pair's publisher one address on in its list. Validate refuses
	// it when a pair's publisher and subscriber would still connect to the same address
	// (addresses are compared as written: give each broker the same way in both lists).
	CrossNode bool `json:"cross_node,omitempty"`
	// Pairs is the number of publisher/subscriber pairs.
	Pairs int `json:"pairs"`
	// Count is how many messages to publish in all; 0 publishes for Duration.
	Count int `json:"count,omitempty"`
	// Duration bounds the publishing when Count is 0.
	Duration time.Duration `json:"duration,omitempty"`
	// Rate is the offered rate in messages a second over all pairs; 0 publishes as fast as
	// flow control allows.
	Rate float64 `json:"rate,omitempty"`
	// QoS of the publishes and subscriptions: 0 or 1.
	QoS byte `json:"qos"`
	// Size is the payload size in bytes (at least 32).
	Size int `json:"size"`
	// Window is the most messages of a pair published but not yet received: end-to-end
	// flow control, so a broker's per-subscriber queue never overflows and the figure is
	// a sustainable rate.
	Window int `json:"window"`
	// Inflight is the most QoS 1 publishes of one publisher awaiting PUBACK.
	Inflight int `json:"inflight"`
	// MQTTVersion is the protocol version, 4 or 5.
	MQTTVersion byte `json:"mqtt_version"`
	// Username and Password are the clients' credentials, if the broker wants them.
	Username string `json:"username,omitempty"`
	Password string `json:"-"`
	// Prefix starts client ids and topics.
	Prefix string `json:"prefix"`
	// DrainTimeout bounds the wait for messages after the last publish.
	DrainTimeout time.Duration `json:"drain_timeout"`
	// Progress, when not nil, gets a status line each second.
	Progress io.Writer `json:"-"`
}

// DefaultPubSubConfig returns the defaults.
func DefaultPubSubConfig() PubSubConfig {
	return PubSubConfig{
		MQTT:         []string{"127.0.0.1:1883"},
		Pairs:        8,
		Duration:     10 * time.Second,
		QoS:          0,
		Size:         64,
		Window:       256,
		Inflight:     64,
		MQTTVersion:  4,
		Prefix:       "bench",
		DrainTimeout: 10 * time.Second,
	}
}

// Validate checks the configuration; errors name the field.
func (c PubSubConfig) Validate() error {
	for _, l := range []struct {
		field string
		addrs []string
	}{{"MQTT", c.MQTT}, {"SubMQTT", c.SubMQTT}, {"PubMQTT", c.PubMQTT}} {
		if slices.Contains(l.addrs, "") {
			return fmt.Errorf("%s %q: an empty address", l.field, strings.Join(l.addrs, ","))
		}
	}
	switch {
	case len(c.subBrokers()) == 0:
		return errors.New("missing MQTT (or SubMQTT): required")
	case len(c.pubBrokers()) == 0:
		return errors.New("missing MQTT (or PubMQTT): required")
	case c.Pairs < 1:
		return fmt.Errorf("bad Pairs %d: want at least 1", c.Pairs)
	case c.Count < 0:
		return fmt.Errorf("bad Count %d: must not be negative", c.Count)
	case c.Count == 0 && c.Duration <= 0:
		return errors.New("give Count or a positive Duration")
	case c.Rate < 0:
		return fmt.Errorf("bad Rate %v: must not be negative", c.Rate)
	case c.QoS > 1:
		return fmt.Errorf("bad QoS %d: want 0 or 1", c.QoS)
	case c.Size < stampLen || c.Size > 1<<20:
		return fmt.Errorf("bad Size %d: want %d to %d bytes", c.Size, stampLen, 1<<20)
	case c.Window < 1:
		return fmt.Errorf("bad Window %d: want at least 1", c.Window)
	case c.Inflight < 1 || c.Inflight > 65535:
		return fmt.Errorf("bad Inflight %d: want 1 to 65535", c.Inflight)
	case c.MQTTVersion != 4 && c.MQTTVersion != 5:
		return fmt.Errorf("bad MQTTVersion %d: want 4 or 5", c.MQTTVersion)
	case c.DrainTimeout <= 0:
		return fmt.Errorf("bad DrainTimeout %v: must be positive", c.DrainTimeout)
	}
	if c.CrossNode {
		for i := range c.Pairs {
			if sub, pub := c.brokers(i); sub == pub {
				return fmt.Errorf("CrossNode: pair %d's subscriber and publisher would both connect to %s; "+
					"give at least two brokers, each once", i, sub)
			}
		}
	}
	return nil
}

func (c PubSubConfig) subBrokers() []string {
	if len(c.SubMQTT) > 0 {
		return c.SubMQTT
	}
	return c.MQTT
}

func (c PubSubConfig) pubBrokers() []string {
	if len(c.PubMQTT) > 0 {
		return c.PubMQTT
	}
	return c.MQTT
}

// brokers returns the addresses pair i's subscriber and publisher connect to. Only for
// a configuration that passes Validate.
func (c PubSubConfig) brokers(i int) (sub, pub string) {
	subs, pubs := c.subBrokers(), c.pubBrokers()
	k := 0
	if c.CrossNode {
		k = 1
	}
	return subs[i%len(subs)], pubs[(i+k)%len(pubs)]
}

// placement counts the pairs of each subscriber's and publisher's broker, in the order of
// the first pair of each.
func (c PubSubConfig) placement() *Placement {
	pl := &Placement{Pairs: c.Pairs}
	at := map[[2]string]int{}
	for i := range c.Pairs {
		sub, pub := c.brokers(i)
		k, ok := at[[2]string{sub, pub}]
		if !ok {
			k = len(pl.Routes)
			at[[2]string{sub, pub}] = k
			pl.Routes = append(pl.Routes, PlacementRoute{Sub: sub, Pub: pub})
		}
		pl.Routes[k].Pairs++
		if sub != pub {
			pl.CrossBroker++
		}
	}
	return pl
}

// pair is one publisher and its subscriber.
type pair struct {
	topic    string
	pub, sub *mqttclient.Client
	recvd    atomic.Int64 // distinct messages the subscriber got
	notify   chan struct{}
	waiting  atomic.Bool // the publisher waits for window space

	// QoS 1 publishes awaiting PUBACK, in publish order; brokers acknowledge QoS 1
	// publishes in order [MQTT-4.6.0-2], so the front is normally the one acknowledged.
	amu     sync.Mutex
	pending []pendingPub
}

type pendingPub struct {
	id  uint16
	seq uint32
}

type pubsub struct {
	cfg PubSubConfig
	tally
	pairs   []*pair
	settled atomic.Int64 // publishes accepted or refused
}

// RunPubSub runs a publish/subscribe benchmark.
func RunPubSub(ctx context.Context, cfg PubSubConfig) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &pubsub{cfg: cfg, tally: tally{check: NewChecker(cfg.Pairs)}}
	res := &Result{Kind: "pubsub", Started: time.Now().UTC(), Config: cfg, Placement: cfg.placement(), OK: true}
	run := cfg.Prefix + "-" + runID()
	p.epoch = time.Now()
	p.pairs = make([]*pair, cfg.Pairs)
	defer p.close()
	for i := range p.pairs {
		if err := p.connect(ctx, i, run); err != nil {
			return nil, err
		}
	}

	cpu0 := cpuTime()
	start := time.Now()
	var deadline time.Time
	if cfg.Count == 0 {
		deadline = start.Add(cfg.Duration)
	}
	var sentMeter, recvMeter rateMeter
	prog := startProgress(cfg.Progress, time.Second, func(el time.Duration) string {
		s, r := p.sent.Load(), p.check.Received()
		return fmt.Sprintf("pubsub %5.1fs  published %d (%.0f/s)  received %d (%.0f/s)",
			el.Seconds(), s, sentMeter.rate(s), r, recvMeter.rate(r))
	})
	var wg sync.WaitGroup
	for i := range p.pairs {
		wg.Add(1)
		go func() { defer wg.Done(); p.publish(ctx, i, start, deadline) }()
	}
	wg.Wait()
	sendEnd := time.Now()
	p.waitDrain(ctx)
	prog.Stop()
	p.fill(res, start, sendEnd, cpuTime()-cpu0)
	c := *res.Completeness
	if cfg.QoS == 1 {
		if c.Missing > 0 {
			res.fail("%d acknowledged QoS 1 message(s) never arrived", c.Missing)
		}
		if c.OutOfOrder > 0 {
			res.fail("%d message(s) arrived out of order", c.OutOfOrder)
		}
	}
	if res.Misrouted > 0 {
		res.fail("%d message(s) arrived on the wrong subscription", res.Misrouted)
	}
	if c.Received == 0 {
		res.fail("no message arrived")
	}
	for _, pr := range p.pairs {
		for _, cl := range []*mqttclient.Client{pr.pub, pr.sub} {
			if cl.Err() != nil {
				res.fail("a client lost its connection: %v", cl.Err())
				return res, nil
			}
		}
	}
	return res, nil
}

func (p *pubsub) connect(ctx context.Context, i int, run string) error {
	cfg := p.cfg
	pr := &pair{topic: fmt.Sprintf("%s/%s/%d", cfg.Prefix, run, i), notify: make(chan struct{}, 1)}
	p.pairs[i] = pr
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	subAddr, pubAddr := cfg.brokers(i)
	var err error
	pr.sub, err = mqttclient.Dial(cctx, subAddr, mqttclient.Options{
		ID: fmt.Sprintf("%s-%d-s", run, i), Version: cfg.MQTTVersion, KeepAlive: 60,
		Username: cfg.Username, Password: cfg.Password,
		OnMessage: func(m *mqttclient.Message) { p.receive(i, m) },
	})
	if err != nil {
		return fmt.Errorf("subscriber %d on %s: %w", i, subAddr, err)
	}
	if err := pr.sub.Subscribe(cctx, pr.topic, cfg.QoS); err != nil {
		return fmt.Errorf("subscriber %d on %s: %w", i, subAddr, err)
	}
	pr.sub.Start()
	pr.pub, err = mqttclient.Dial(cctx, pubAddr, mqttclient.Options{
		ID: fmt.Sprintf("%s-%d-p", run, i), Version: cfg.MQTTVersion, KeepAlive: 60,
		Username: cfg.Username, Password: cfg.Password,
		MaxInflight: cfg.Inflight,
		OnPuback:    func(id uint16, reason byte) { p.puback(pr, i, id, reason) },
	})
	if err != nil {
		return fmt.Errorf("publisher %d on %s: %w", i, pubAddr, err)
	}
	pr.pub.Start()
	return nil
}

func (p *pubsub) close() {
	var wg sync.WaitGroup
	for _, pr := range p.pairs {
		if pr == nil {
			continue
		}
		for _, c := range []*mqttclient.Client{pr.pub, pr.sub} {
			if c != nil {
				wg.Add(1)
				go func() { defer wg.Done(); c.Close() }()
			}
		}
	}
	wg.Wait()
}

// receive handles a message on pair i's subscriber.
func (p *pubsub) receive(i int, m *mqttclient.Message) {
	now := time.Since(p.epoch)
	st, err := ParseStamp(m.Payload)
	if err != nil {
		return
	}
	if int(st.Stream) != i {
		p.misrouted.Add(1)
		return
	}
	if !p.check.Receive(i, st.Seq) {
		return
	}
	p.hist.Record(now - time.Duration(st.SentNS))
	p.lastRecv.Store(int64(now))
	pr := p.pairs[i]
	pr.recvd.Add(1)
	if pr.waiting.Load() {
		select {
		case pr.notify <- struct{}{}:
		default:
		}
	}
}

// puback settles a QoS 1 publish of pair i.
func (p *pubsub) puback(pr *pair, i int, id uint16, reason byte) {
	pr.amu.Lock()
	var seq uint32
	found := false
	for k, pp := range pr.pending {
		if pp.id == id {
			seq, found = pp.seq, true
			pr.pending = append(pr.pending[:k], pr.pending[k+1:]...)
			break
		}
	}
	pr.amu.Unlock()
	if !found {
		return
	}
	if reason >= 0x80 {
		p.check.Refuse(i, seq)
	} else {
		p.check.Accept(i, seq)
	}
	p.settled.Add(1)
}

// publish publishes pair i's share of the messages.
func (p *pubsub) publish(ctx context.Context, i int, start, deadline time.Time) {
	cfg := p.cfg
	pr := p.pairs[i]
	quota := -1
	if cfg.Count > 0 {
		quota = cfg.Count / cfg.Pairs
		if i < cfg.Count%cfg.Pairs {
			quota++
		}
	}
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Pairs) / cfg.Rate)
	}
	payload := newPayload(cfg.Size)
	// written off: messages given up as lost when the window stalled (QoS 0 drops), so
	// losses do not stop the publisher; the checker still counts them.
	var writtenOff int64
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for seq := 0; quota < 0 || seq < quota; seq++ {
		var stamp time.Duration
		if interval > 0 {
			due := start.Add(time.Duration(seq)*interval + time.Duration(i)*interval/time.Duration(cfg.Pairs))
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
			stamp = due.Sub(p.epoch)
		}
		if ctx.Err() != nil || !deadline.IsZero() && time.Now().After(deadline) {
			return
		}
		if !p.waitWindow(ctx, pr, int64(seq), &writtenOff) {
			return
		}
		if interval == 0 {
			stamp = time.Since(p.epoch)
		}
		writeStamp(payload, Stamp{SentNS: int64(stamp), Stream: uint32(i), Seq: uint32(seq)})
		if cfg.QoS == 1 {
			_, err := pr.pub.PublishTracked(ctx, pr.topic, payload, 1, func(id uint16) {
				pr.amu.Lock()
				pr.pending = append(pr.pending, pendingPub{id, uint32(seq)})
				pr.amu.Unlock()
			})
			if err != nil {
				return
			}
		} else {
			if _, err := pr.pub.Publish(ctx, pr.topic, payload, 0); err != nil {
				return
			}
			p.check.Accept(i, uint32(seq))
			p.settled.Add(1)
		}
		p.sent.Add(1)
	}
}

// waitWindow waits until fewer than Window messages of the pair are on their way. After a
// second without progress it writes the outstanding ones off (they are lost).
func (p *pubsub) waitWindow(ctx context.Context, pr *pair, sent int64, writtenOff *int64) bool {
	for {
		r := pr.recvd.Load()
		if sent-r-*writtenOff < int64(p.cfg.Window) {
			return true
		}
		pr.waiting.Store(true)
		if pr.recvd.Load() != r {
			pr.waiting.Store(false)
			continue
		}
		t := time.NewTimer(time.Second)
		select {
		case <-pr.notify:
		case <-t.C:
			if pr.recvd.Load() == r {
				*writtenOff = sent - r
			}
		case <-ctx.Done():
			t.Stop()
			pr.waiting.Store(false)
			return false
		case <-pr.pub.Done():
			t.Stop()
			pr.waiting.Store(false)
			return false
		}
		t.Stop()
		pr.waiting.Store(false)
	}
}

// waitDrain waits until every publish is settled and every accepted message arrived, or
// DrainTimeout.
func (p *pubsub) waitDrain(ctx context.Context) {
	deadline := time.Now().Add(p.cfg.DrainTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if p.settled.Load() >= p.sent.Load() && p.check.Received() >= p.check.Accepted() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}
