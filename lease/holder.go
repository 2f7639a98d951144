package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/notify"
	"github.com/switchboard-mqtt/switchboard/store"
)

// Default timings. A node renews four times a second and may miss seven renewals in a row
// (a slow store) before it stops sending.
const (
	DefaultDuration = 2 * time.Second
	DefaultInterval = 250 * time.Millisecond
	defaultBatch    = 1000
)

// Config configures a Holder.
type Config struct {
	// Node is the node whose notices are taken.
	Node string
	// Duration is how long a successful round of takes keeps the lease, counted from the
	// moment the round's first take was sent. Senders wait this long after storing a
	// notice, so it also bounds how late a lost kick or drain takes effect.
	Duration time.Duration
	// Interval is how often notices are taken. It must be well below Duration.
	Interval time.Duration
	// Batch is the most notices one take returns.
	Batch int
}

// Validate checks the configuration; errors name the field.
func (c Config) Validate() error {
	switch {
	case c.Node == "":
		return errors.New("lease node: empty")
	case c.Duration <= 0:
		return fmt.Errorf("lease duration %v: must be positive", c.Duration)
	case c.Interval <= 0 || c.Interval*2 > c.Duration:
		return fmt.Errorf("lease interval %v: must be positive and at most half the lease duration %v", c.Interval, c.Duration)
	case c.Batch < 0:
		return fmt.Errorf("lease batch %d: must not be negative", c.Batch)
	}
	return nil
}

// NoticeTaker is the part of the store a Holder uses.
type NoticeTaker interface {
	TakeNotices(ctx context.Context, node string, max int) ([]store.Notice, error)
	DoneNotices(ctx context.Context, node string, upTo uint64) error
}

// Holder keeps a node's delivery lease. Its methods are safe for concurrent use.
type Holder struct {
	cfg   Config
	st    NoticeTaker
	apply func([]store.Notice)
	log   *slog.Logger

	mu         sync.Mutex
	validUntil time.Time     // monotonic; zero: never held
	renewed    chan struct{} // closed at the next renewal that makes the lease valid again
	lastStart  time.Time     // when the last successful round began
	rounds     chan struct{} // closed at the end of the next successful round

	cancel context.CancelFunc
	done   chan struct{}
}

// Start starts renewing the lease. apply is called with each batch of notices before the
// lease they came with becomes valid; it runs on the Holder's goroutine and must not
// block for long (it should act on the node's own state only). The lease is not valid
// until the first round succeeds. Close stops the Holder.
func Start(cfg Config, st NoticeTaker, apply func([]store.Notice), log *slog.Logger) (*Holder, error) {
	if cfg.Batch == 0 {
		cfg.Batch = defaultBatch
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Holder{
		cfg: cfg, st: st, apply: apply, log: log.With("component", "lease"),
		renewed: make(chan struct{}), rounds: make(chan struct{}), cancel: cancel, done: make(chan struct{}),
	}
	go h.run(ctx)
	return h, nil
}

// Valid reports whether the lease is held now.
func (h *Holder) Valid() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Now().Before(h.validUntil)
}

// Check reports whether the lease is held now and, read in the same step, a channel that
// is closed when a renewal next makes it valid after a lapse: a sender that found the
// lease invalid waits on it.
func (h *Holder) Check() (valid bool, renewed <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Now().Before(h.validUntil), h.renewed
}

// Renewals calls fn at once and again after every renewal that makes the lease valid
// after a lapse, until ctx ends (notify.Each). Work that stopped because Check found the
// lease lapsed is resumed by a call that begins after the lease is valid again, however
// the renewals and that Check interleave with this loop's start.
func (h *Holder) Renewals(ctx context.Context, fn func()) {
	notify.Each(ctx, func() <-chan struct{} { _, renewed := h.Check(); return renewed }, fn)
}

// ValidUntil is when the lease runs out unless it is renewed (on the monotonic clock); the
// zero time if it was never held. A write to a client must finish by then.
func (h *Holder) ValidUntil() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.validUntil
}

// Duration is the lease's duration, as other nodes must assume it.
func (h *Holder) Duration() time.Duration { return h.cfg.Duration }

// Close stops renewing; the lease runs out. Idempotent.
func (h *Holder) Close() {
	h.cancel()
	<-h.done
}

func (h *Holder) run(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	failing := false
	for {
		err := h.round(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !failing:
			failing = true
			h.log.Warn("cannot renew the delivery lease; deliveries pause when it runs out", "error", err,
				"lease", h.cfg.Duration)
		case err == nil && failing:
			failing = false
			h.log.Info("delivery lease renewed again")
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// round takes every notice stored so far, acts on it and confirms it, and, if it could,
// extends the lease. A notice is removed from the store only after it was acted on, so a
// take or a confirmation whose answer is lost loses nothing: the next round takes the same
// notices again (acting on one twice is harmless).
func (h *Holder) round(ctx context.Context) error {
	sent := time.Now()
	tctx, cancel := context.WithDeadline(ctx, sent.Add(h.cfg.Duration))
	defer cancel()
	for {
		ns, err := h.st.TakeNotices(tctx, h.cfg.Node, h.cfg.Batch)
		if err != nil {
			return err
		}
		if len(ns) == 0 {
			break
		}
		h.apply(ns)
		var last uint64
		for _, n := range ns {
			last = max(last, n.Seq)
		}
		if err := h.st.DoneNotices(tctx, h.cfg.Node, last); err != nil {
			return err
		}
		if len(ns) < h.cfg.Batch {
			break
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	wasValid := time.Now().Before(h.validUntil)
	h.validUntil = sent.Add(h.cfg.Duration)
	if !wasValid {
		close(h.renewed)
		h.renewed = make(chan struct{})
	}
	h.lastStart = sent
	close(h.rounds)
	h.rounds = make(chan struct{})
	return nil
}

// AwaitRound waits until a round that began after t has taken and acted on every notice
// stored before it began. A node that confirms a session under a new epoch waits for one
// before it writes to it, so that a revocation stored meanwhile (perhaps while its epoch
// looked gone to the sender) is acted on first.
func (h *Holder) AwaitRound(ctx context.Context, t time.Time) error {
	for {
		h.mu.Lock()
		last, rounds := h.lastStart, h.rounds
		h.mu.Unlock()
		if last.After(t) {
			return nil
		}
		select {
		case <-rounds:
		case <-h.done:
			return errors.New("lease holder closed")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
