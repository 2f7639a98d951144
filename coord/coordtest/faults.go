package coordtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// What the backends' fault tests share: a member registered and seen, an observer on a link
// that is not cut, and the fence's timing rule checked against what the observer saw.

// Late is how much later than its deadline a timer may fire on a busy 2-core machine before
// a test calls it a failure.
const Late = 250 * time.Millisecond

// RegisterSeen registers a member id on node and waits until watch shows it; it returns the
// registration and its first status.
func RegisterSeen(ctx context.Context, t *testing.T, node coord.Registrar, watch <-chan []coord.Member, id string) (coord.Registration, coord.Status) {
	t.Helper()
	reg, err := node.Register(ctx, NewMember(id))
	Must(t, err)
	st, _ := reg.Status()
	WaitMembers(t, watch, 5*time.Second, id+" registered", has(id))
	return reg, st
}

// Observation is what a client whose link is not cut saw of an entry: the send time of the
// last read that found it, and when a read first found it gone and when a watch reported the
// deletion.
type Observation struct {
	Present chan struct{} // closed once the entry was seen
	Gone    chan struct{} // closed once it was seen gone
	stop    func()

	LastPresent, GoneAt, WatchAt time.Time // valid once Gone is closed
}

// Stop ends the observation; the test's end does too. Idempotent.
func (o *Observation) Stop() { o.stop() }

// Observe follows an entry: read every 10ms (a read current at the instant it is sent), and
// once it was seen, the channel that watchDeletion returns, closed when a watch reports the
// deletion. Both end with ctx.
func Observe(t *testing.T, read func(ctx context.Context) (bool, error), watchDeletion func(ctx context.Context) <-chan struct{}) *Observation {
	ctx, cancel := context.WithCancel(context.Background())
	o := &Observation{Present: make(chan struct{}), Gone: make(chan struct{})}
	var wg sync.WaitGroup
	o.stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(o.stop)
	wg.Go(func() {
		var deleted <-chan struct{}
		seen := false
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			sent := time.Now()
			present, err := read(ctx)
			switch {
			case err != nil:
			case present:
				o.LastPresent = sent
				if !seen {
					seen = true
					close(o.Present)
					deleted = watchDeletion(ctx)
				}
			case seen:
				o.GoneAt = time.Now()
				if o.WatchAt.IsZero() {
					o.WatchAt = o.GoneAt
				}
				close(o.Gone)
				return
			}
			select {
			case <-deleted:
				o.WatchAt, deleted = time.Now(), nil
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	})
	return o
}

// CheckFence checks what every backend promises a registration cut off at cut, for its
// session timeout or lease TTL: Suspended within a third of it after the first unanswered
// probe, which goes out at most a probe interval (a sixth) after the cut; Fenced while the
// server still held the entry, before the send time of a current read that still found it.
func CheckFence(t *testing.T, timeout time.Duration, cut time.Time, susp, fenced coord.Status, o *Observation) {
	t.Helper()
	if d := susp.Since.Sub(cut); d > timeout/3+timeout/6+Late {
		t.Errorf("suspended %v after the cut, want at most T/3 + T/6 = %v", d, timeout/3+timeout/6)
	}
	if !fenced.Since.Before(o.LastPresent) {
		t.Errorf("fenced %v after the cut, the entry was last seen %v after it: not fenced strictly before the deletion",
			fenced.Since.Sub(cut), o.LastPresent.Sub(cut))
	}
}
