package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
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
