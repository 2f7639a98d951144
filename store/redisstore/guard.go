package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// outageAfter is how many calls in a row must find Redis out of reach (no answer,
	// refused, reset) before the guard stops sending calls to it.
	outageAfter = 3
	// probeEvery is how often, while Redis is out of reach, one call is let through to
	// find out whether it is back; the others fail at once.
	probeEvery = 100 * time.Millisecond
	// shortWait: a call that timed out sooner than this had a short deadline of its own;
	// it says nothing about Redis.
	shortWait = 100 * time.Millisecond
)

// errOutOfReach is the error of a call the guard did not send: Redis has been out of reach.
var errOutOfReach = errors.New("not sent: redis out of reach")

// guard fails calls at once while Redis is out of reach, so that callers under load get
// store.ErrUnavailable (a router's 503) within microseconds rather than each waiting for its
// own timeout, and goroutines do not pile up behind a server that does not answer. After
// outageAfter calls in a row found Redis out of reach, it lets one call through every
// probeEvery and fails the others; the probe's reply (any reply, an error reply included)
// ends the outage. It is a go-redis hook on the client (on Redis Cluster, one
// on each node's client): a dead primary of a cluster fails the calls for its own slots
// fast until Cluster's failover promotes its replica, and no others.
type guard struct {
	log   *slog.Logger
	where string

	failures atomic.Int64 // calls in a row that found Redis out of reach
	out      atomic.Bool  // in an outage

	mu        sync.Mutex
	since     time.Time // when the outage began
	last      error     // the last failure
	nextProbe time.Time
	probing   bool
	refused   int64 // calls failed at once during this outage
}

func newGuard(log *slog.Logger, where string) *guard { return &guard{log: log, where: where} }

// admit lets a call through, or refuses it during an outage; probe says the call is the
// outage's probe.
func (g *guard) admit() (probe bool, err error) { return g.admitMay(true) }

// admitMay is admit for a call that may take the probe only if mayProbe.
func (g *guard) admitMay(mayProbe bool) (probe bool, err error) {
	if !g.out.Load() {
		return false, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.out.Load() {
		return false, nil
	}
	now := time.Now()
	if mayProbe && !g.probing && !now.Before(g.nextProbe) {
		g.probing = true
		return true, nil
	}
	g.refused++
	return false, fmt.Errorf("%w for %v (last: %v)", errOutOfReach, now.Sub(g.since).Round(time.Millisecond), g.last)
}

// join is admit for a call about to wait in a batch queue (batch.go): an error while
// Redis is out of reach, unless the call may be the outage's probe, which its batch's
// first round trip to this server then is (see admitIn); the calls that follow
// it are refused until the probe is answered, rather than waiting behind it. A call takes
// the probe only when its queue is idle, so that its batch goes at once: one queued behind
// a slow batch on a Redis that answers (a durable write waiting for its replica, say) would
// hold the probe, and have every other call on the server refused, until that batch
// ended; it is refused instead, and the next call not batched probes. Nil-safe: a call
// whose server is not known is let through.
func (g *guard) join(idle bool) (probe bool, err error) {
	if g == nil {
		return false, nil
	}
	return g.admitMay(idle)
}

// dropProbe ends a probe that made no round trip (its batch never reached the server):
// the next call may probe at once.
func (g *guard) dropProbe() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.probing = false
}

// outcome is what one call's error says of Redis.
type outcome int

const (
	answered  outcome = iota // Redis replied (an error reply included)
	unreached                // no reply: refused, reset, timed out
	unknown                  // says nothing: cancelled by the caller, a short deadline, the client closed
)

func classify(err error, took time.Duration) outcome {
	var rerr redis.Error
	var nerr net.Error
	switch {
	case err == nil, errors.As(err, &rerr):
		return answered
	case errors.Is(err, errOutOfReach), errors.Is(err, context.Canceled), errors.Is(err, redis.ErrClosed):
		return unknown
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		if took < shortWait {
			return unknown
		}
	}
	return unreached
}

// done records the outcome of a round trip that stands for calls calls (a batch's; see
// batch.go), the first of them begun at start. Nil-safe.
func (g *guard) done(probe bool, start time.Time, err error, calls int) {
	if g == nil {
		return
	}
	switch classify(err, time.Since(start)) {
	case answered:
		if g.failures.Load() != 0 {
			g.failures.Store(0)
		}
		if !probe && !g.out.Load() {
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if probe {
			g.probing = false
		}
		// Only a round trip begun after the outage was declared ends it: the reply to one
		// sent before (Redis answered, then froze; the reader got to it late) says nothing
		// of Redis now.
		if g.out.Load() && (probe || !start.Before(g.since)) {
			g.out.Store(false)
			g.log.Info("redisstore: redis answers again", "redis", g.where,
				"outage", time.Since(g.since).Round(time.Millisecond), "refused", g.refused)
		}
	case unreached:
		n := g.failures.Add(int64(calls))
		now := time.Now()
		g.mu.Lock()
		defer g.mu.Unlock()
		g.last = err
		if probe {
			g.probing = false
			g.nextProbe = now.Add(probeEvery)
		}
		if !g.out.Load() && n >= outageAfter {
			g.out.Store(true)
			g.since, g.nextProbe, g.refused = now, now.Add(probeEvery), 0
			g.log.Warn("redisstore: redis out of reach; failing calls at once and probing every "+probeEvery.String(),
				"redis", g.where, "failures", n, "error", err)
		}
	default:
		if probe {
			g.mu.Lock()
			g.probing = false
			g.mu.Unlock()
		}
	}
}

// send makes one round trip the guard admitted and records its outcome: for a batch's
// (batch.go), as many calls as found Redis out of reach with it, their wait begun when
// the first of them joined the queue.
func (g *guard) send(ctx context.Context, probe bool, trip func(context.Context) error) error {
	start, b := time.Now(), batchIn(ctx)
	if b != nil {
		start = b.since
	}
	err := trip(context.WithValue(ctx, admittedKey{}, true))
	calls := 1
	if b != nil && classify(err, time.Since(start)) == unreached {
		calls = b.tell(g)
	}
	g.done(probe, start, err, calls)
	return err
}

func (g *guard) DialHook(next redis.DialHook) redis.DialHook { return next }

// admittedKey marks the context of a call the guard let through: what go-redis runs
// inside it (a new connection's handshake pipeline) is part of it, not another call.
type admittedKey struct{}

func (g *guard) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(admittedKey{}) != nil {
			return next(ctx, cmd)
		}
		probe, err := admitIn(ctx, g)
		if err != nil {
			cmd.SetErr(err)
			return err
		}
		return g.send(ctx, probe, func(ctx context.Context) error { return next(ctx, cmd) })
	}
}

func (g *guard) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if ctx.Value(admittedKey{}) != nil {
			return next(ctx, cmds)
		}
		probe, err := admitIn(ctx, g)
		if err != nil {
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		return g.send(ctx, probe, func(ctx context.Context) error { return next(ctx, cmds) })
	}
}
