package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errWrong = errors.New("wrong password")

// fakeClock is a settable clock for the guard's failure windows.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func guardWithClock(concurrency, budget int) (*authGuard, *fakeClock) {
	g := newAuthGuard(concurrency, budget, nil)
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	g.now = clk.Now
	return g, clk
}

func TestAuthGuardBoundsConcurrentChecks(t *testing.T) {
	t.Parallel()
	g := newAuthGuard(2, 0, nil)
	release := make(chan struct{})
	var running, peak atomic.Int32
	started := make(chan struct{}, 10)
	var wg sync.WaitGroup
	results := make(chan error, 5)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			results <- g.check(ctx, "10.0.0.1", func() error {
				n := running.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				started <- struct{}{}
				<-release
				running.Add(-1)
				return nil
			})
		}()
	}
	<-started
	<-started
	// Both slots are taken: a check that cannot wait is refused as busy, without running.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ran := false
	if err := g.check(ctx, "10.0.0.2", func() error { ran = true; return nil }); !errors.Is(err, errAuthBusy) || ran {
		t.Fatalf("check with every slot busy: %v (ran %v), want errAuthBusy", err, ran)
	}
	if !errors.Is(errAuthBusy, errAuthLimited) || !errors.Is(errAuthThrottled, errAuthLimited) {
		t.Fatal("guard refusals must wrap errAuthLimited")
	}
	close(release)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatalf("queued check: %v", err)
		}
	}
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrent checks %d, want 2", p)
	}
	if n := g.checks.Load(); n != 5 {
		t.Fatalf("checks counted %d, want 5", n)
	}
}

func TestAuthGuardFailureBudget(t *testing.T) {
	t.Parallel()
	g, clk := guardWithClock(1, 3)
	ctx := context.Background()
	calls := 0
	wrong := func() error { calls++; return errWrong }
	for i := 0; i < 3; i++ {
		if err := g.check(ctx, "10.0.0.1", wrong); !errors.Is(err, errWrong) {
			t.Fatalf("failure %d: %v", i, err)
		}
		clk.Advance(10 * time.Second)
	}
	// Budget spent: refused without a check, right or wrong password alike.
	for _, fn := range []func() error{wrong, func() error { calls++; return nil }} {
		if err := g.check(ctx, "10.0.0.1", fn); !errors.Is(err, errAuthThrottled) {
			t.Fatalf("after the budget: %v, want errAuthThrottled", err)
		}
	}
	if calls != 3 {
		t.Fatalf("%d checks ran, want 3", calls)
	}
	// Another address is not affected.
	if err := g.check(ctx, "10.0.0.2", func() error { return nil }); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// Still refused just before the minute from the first failure; checked again after it
	// (refusals do not extend the window).
	clk.Advance(authFailureWindow - 30*time.Second - time.Millisecond)
	if err := g.check(ctx, "10.0.0.1", wrong); !errors.Is(err, errAuthThrottled) {
		t.Fatalf("inside the window: %v", err)
	}
	clk.Advance(time.Millisecond)
	if err := g.check(ctx, "10.0.0.1", func() error { return nil }); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// A new window starts at the next failure.
	for i := 0; i < 3; i++ {
		_ = g.check(ctx, "10.0.0.1", wrong)
	}
	if err := g.check(ctx, "10.0.0.1", wrong); !errors.Is(err, errAuthThrottled) {
		t.Fatalf("second window: %v", err)
	}
}

func TestAuthGuardBudgetHoldsForChecksThatWaited(t *testing.T) {
	t.Parallel()
	g := newAuthGuard(1, 2, nil)
	gate := make(chan struct{})
	var ran atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	first := make(chan struct{})
	wg.Add(1)
	go func() { // holds the only slot until the others queue
		defer wg.Done()
		errs <- g.check(context.Background(), "10.0.0.1", func() error { close(first); <-gate; ran.Add(1); return errWrong })
	}()
	<-first
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			errs <- g.check(ctx, "10.0.0.1", func() error { ran.Add(1); return errWrong })
		}()
	}
	waitWaiting(t, g, 5) // all five passed the first budget check
	close(gate)
	wg.Wait()
	if n := ran.Load(); n != 2 {
		t.Fatalf("%d checks ran for an address with a budget of 2", n)
	}
}

func TestAuthGuardForgetsOldAddresses(t *testing.T) {
	t.Parallel()
	g, clk := guardWithClock(1, 5)
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		_ = g.check(ctx, fmt.Sprintf("10.0.%d.%d", i/256, i%256), func() error { return errWrong })
	}
	if n := g.tracked(); n != 1000 {
		t.Fatalf("tracked %d addresses, want 1000", n)
	}
	clk.Advance(authFailureWindow)
	_ = g.check(ctx, "10.9.9.9", func() error { return errWrong })
	if n := g.tracked(); n != 1 {
		t.Fatalf("tracked %d addresses after the window, want 1 (the sweep keeps memory bounded)", n)
	}
}

func TestAuthGuardTableIsCapped(t *testing.T) {
	t.Parallel()
	g, clk := guardWithClock(1, 5)
	for i := 0; i < maxFailureAddrs+10; i++ {
		g.fail(fmt.Sprintf("a%d", i))
		if i%1000 == 0 {
			clk.Advance(time.Millisecond)
		}
	}
	if n := g.tracked(); n != maxFailureAddrs {
		t.Fatalf("tracked %d addresses, want the cap %d", n, maxFailureAddrs)
	}
}

func TestAuthGuardWithoutBudget(t *testing.T) {
	t.Parallel()
	g := newAuthGuard(1, 0, nil)
	for i := 0; i < 50; i++ {
		if err := g.check(context.Background(), "10.0.0.1", func() error { return errWrong }); !errors.Is(err, errWrong) {
			t.Fatalf("check %d: %v", i, err)
		}
	}
}

// waiting is how many checks wait for a slot.
func (g *authGuard) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiters)
}

func waitWaiting(t *testing.T, g *authGuard, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for g.waiting() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d checks waiting, want %d", g.waiting(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAuthGuardServesAddressesThatHaveNotFailedFirst(t *testing.T) {
	t.Parallel()
	g := newAuthGuard(1, 10, nil)
	for i := 0; i < 3; i++ {
		g.fail("10.0.0.66") // a flood's address
	}
	hold := make(chan struct{})
	held := make(chan struct{})
	var order []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	run := func(ip string) {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = g.check(ctx, ip, func() error {
			mu.Lock()
			order = append(order, ip)
			mu.Unlock()
			return nil
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = g.check(context.Background(), "10.0.0.1", func() error { close(held); <-hold; return nil })
	}()
	<-held
	wg.Add(3)
	go run("10.0.0.66")
	waitWaiting(t, g, 1)
	go run("10.0.0.66")
	waitWaiting(t, g, 2)
	go run("10.0.0.7") // arrives last, has not failed
	waitWaiting(t, g, 3)
	close(hold)
	wg.Wait()
	if want := []string{"10.0.0.7", "10.0.0.66", "10.0.0.66"}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("checks ran in the order %v, want %v", order, want)
	}
}

func TestAuthGuardWaiterThatGivesUpLeavesTheQueue(t *testing.T) {
	t.Parallel()
	g := newAuthGuard(1, 0, nil)
	hold := make(chan struct{})
	held := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.check(context.Background(), "10.0.0.1", func() error { close(held); <-hold; return nil })
	}()
	<-held
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.check(ctx, "10.0.0.2", func() error { return nil }); !errors.Is(err, errAuthBusy) {
		t.Fatalf("gave up: %v, want errAuthBusy", err)
	}
	if n := g.waiting(); n != 0 {
		t.Fatalf("%d waiters left after giving up", n)
	}
	close(hold)
	<-done
	// The slot is free again.
	if err := g.check(context.Background(), "10.0.0.2", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	busy := g.busy
	g.mu.Unlock()
	if busy != 0 {
		t.Fatalf("%d slots busy after every check ended", busy)
	}
}
