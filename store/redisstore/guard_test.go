package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// TestOutageFailsFast: while Redis is frozen (SIGSTOP), callers under load get
// ErrUnavailable at once once a few calls have timed out, instead of each waiting out its
// own deadline; only one call at a time (the probe) waits on Redis, so goroutines do not
// pile up. Once Redis answers again, calls succeed within a probe interval or so.
func TestOutageFailsFast(t *testing.T) {
	r := testenv.Redis(t)
	cfg := testConfig(t, r.Addr)
	cfg.ReadTimeout = time.Second
	s := open(t, cfg)
	ctx := t.Context()
	appendOne(t, s, 10, storetest.NewMessage("c1", "m1"))
	base := runtime.NumGoroutine()
	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := true
	defer func() {
		if paused {
			r.Resume()
		}
	}()

	const callers = 32
	const during = 3 * time.Second
	var mu sync.Mutex
	var took []time.Duration // of calls that began after the first failure
	var firstFailure time.Time
	slow, calls, peak := 0, 0, 0
	stop := time.Now().Add(during)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				start := time.Now()
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, _, err := s.Lookup(cctx, fmt.Sprint("c", i))
				cancel()
				d := time.Since(start)
				if !errors.Is(err, store.ErrUnavailable) {
					t.Errorf("lookup while Redis is frozen: %v, want ErrUnavailable", err)
					return
				}
				mu.Lock()
				calls++
				if firstFailure.IsZero() {
					firstFailure = time.Now()
				}
				if start.After(firstFailure) {
					took = append(took, d)
					if d > 500*time.Millisecond {
						slow++ // it waited for Redis: a probe
					}
				}
				if n := runtime.NumGoroutine(); n > peak {
					peak = n
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(took)
	p50, p99 := took[len(took)/2], took[len(took)*99/100]
	t.Logf("%d calls in %v while Redis was frozen; after the first failure: %d calls, p50 %v, p99 %v, %d waited on Redis (probes); goroutines %d before, at most %d during",
		calls, during, len(took), p50, p99, slow, base, peak)
	if p50 > time.Millisecond {
		t.Errorf("median failure took %v while Redis was known out of reach, want under 1ms", p50)
	}
	// One probe at a time, each waiting out its deadline (plus the few calls sent
	// before enough had failed to tell).
	if max := int(during/time.Second) + 5; slow > max {
		t.Errorf("%d calls waited on the frozen Redis, want at most %d", slow, max)
	}
	// The callers' own goroutines and go-redis's, however many calls fail.
	if peak > base+3*callers {
		t.Errorf("goroutines rose from %d to %d with %d callers", base, peak, callers)
	}

	if err := r.Resume(); err != nil {
		t.Fatal(err)
	}
	paused = false
	start := time.Now()
	testenv.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, _, err := s.Lookup(ctx, "c1")
		return err
	})
	t.Logf("calls succeed again %v after Redis resumed", time.Since(start).Round(time.Millisecond))
}

// holdOnce holds the next round trip that reaches it (once armed) until released: a call
// the guard let through that Redis does not answer.
type holdOnce struct {
	armed   atomic.Bool
	held    chan struct{}
	release chan struct{}
}

func (h *holdOnce) trip() {
	if h.armed.CompareAndSwap(true, false) {
		close(h.held)
		<-h.release
	}
}

func (h *holdOnce) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *holdOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.trip(); return next(ctx, cmd) }
}
func (h *holdOnce) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.trip(); return next(ctx, cmds) }
}

// TestBatchedCallsFailAtOnceDuringAnOutage: Connects, Disconnects, Peeks and Lookups wait
// in batch queues. While Redis is known out of reach and the outage's probe (a call of the
// same kind, here held unanswered) is under way, another call must be refused at once by
// the guard, not queued behind the probe to wait out its own deadline.
func TestBatchedCallsFailAtOnceDuringAnOutage(t *testing.T) {
	r := testenv.Redis(t)
	cfg := testConfig(t, r.Addr)
	cfg.ReadTimeout, cfg.DurabilityTimeout = 300*time.Millisecond, 100*time.Millisecond
	s := open(t, cfg)
	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Resume() })
	testenv.Eventually(t, 30*time.Second, 10*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, _, err := s.Lookup(ctx, "c"); !redisstore.RefusedByGuard(err) {
			return fmt.Errorf("lookup while Redis is frozen: %v, want it refused by the guard", err)
		}
		return nil
	})
	for _, k := range []struct {
		name string
		call func(context.Context) error
	}{
		{"Connect", func(ctx context.Context) error {
			_, err := s.Connect(ctx, storetest.NewPresence("c", "n1", 1))
			return err
		}},
		{"Disconnect", func(ctx context.Context) error { _, err := s.Disconnect(ctx, "c", "s"); return err }},
		{"Peek", func(ctx context.Context) error { _, err := s.Peek(ctx, "c", 0, 10); return err }},
		{"Lookup", func(ctx context.Context) error { _, _, err := s.Lookup(ctx, "c"); return err }},
	} {
		t.Run(k.name, func(t *testing.T) {
			h := &holdOnce{held: make(chan struct{}), release: make(chan struct{})}
			h.armed.Store(true)
			redisstore.AddHook(s, h)
			// Calls are refused until the guard lets one through to probe; that one is held.
			var probe chan error
			for attempt := 0; probe == nil; attempt++ {
				if attempt == 1000 {
					t.Fatal("no call was let through to probe")
				}
				res := make(chan error, 1)
				go func() { res <- k.call(t.Context()) }()
				select {
				case <-h.held:
					probe = res
				case err := <-res:
					if !redisstore.RefusedByGuard(err) {
						t.Fatalf("%s while Redis is frozen: %v, want it refused by the guard", k.name, err)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			err := k.call(ctx)
			cancel()
			close(h.release)
			if !redisstore.RefusedByGuard(err) || !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s while the probe is under way: %v, want it refused by the guard (ErrUnavailable) at once", k.name, err)
			}
			if err := <-probe; !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("the probe: %v, want ErrUnavailable", err)
			}
		})
	}
}
