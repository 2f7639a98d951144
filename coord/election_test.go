package coord_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// fakeBallot stands in a line the test scripts: each Line takes the next count (the last
// one repeats); a Wait returns at once while the ballot waits to lead, and once it leads
// (its leadership's follow) only when ctx ends.
type fakeBallot struct {
	mu    sync.Mutex
	line  []int
	led   bool
	waits int // before it led
	gone  int // withdrawals
	sess  *fakeSession
	// withdrew, if not nil, gets a value at every withdrawal (Campaign withdraws a lost or
	// abandoned candidate in the background); block makes Withdraw wait for its ctx (a cut link).
	withdrew chan struct{}
	block    bool
}

func (b *fakeBallot) Line(context.Context) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.line[0]
	if len(b.line) > 1 {
		b.line = b.line[1:]
	}
	b.led = n == 0
	return n, nil
}

func (b *fakeBallot) Wait(ctx context.Context) {
	b.mu.Lock()
	led := b.led
	if !led {
		b.waits++
	}
	b.mu.Unlock()
	if led {
		<-ctx.Done()
	}
}

// counts returns the waits before it led and the withdrawals.
func (b *fakeBallot) counts() (waits, gone int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waits, b.gone
}

func (b *fakeBallot) Candidacy() coord.Candidacy {
	return coord.Candidacy{Name: "fake", Session: b.sess, Timeout: time.Second, Resign: b.Withdraw}
}

func (b *fakeBallot) Withdraw(ctx context.Context) error {
	if b.block {
		<-ctx.Done()
	}
	b.mu.Lock()
	b.gone++
	b.mu.Unlock()
	if b.withdrew != nil {
		b.withdrew <- struct{}{}
	}
	return nil
}

// withdrawn waits for a withdrawal of b.
func withdrawn(t *testing.T, b *fakeBallot) {
	t.Helper()
	select {
	case <-b.withdrew:
	case <-time.After(5 * time.Second):
		t.Fatal("the ballot was not withdrawn")
	}
}

// TestCampaignStandsAgainWhenLost: a candidate lost while it waits is withdrawn and a new
// one stands; the new one is elected once nobody stands before it, and its ballot is the
// fence.
func TestCampaignStandsAgainWhenLost(t *testing.T) {
	g := coord.NewGroup()
	defer g.Close(func() {})
	ctx := testenv.Context(t, 5*time.Second)
	var stood []*fakeBallot
	stand := func(context.Context, string, string) (*fakeBallot, error) {
		b := &fakeBallot{line: []int{2, 1, 0}, sess: healthy(), withdrew: make(chan struct{}, 1)}
		if len(stood) == 0 {
			b.line = []int{1, -1}
		}
		stood = append(stood, b)
		return b, nil
	}
	l, err := coord.Campaign(ctx, g, testenv.Logger(t), "monitor", "mon-a", stand)
	if err != nil {
		t.Fatal(err)
	}
	withdrawn(t, stood[0])
	if waits, gone := stood[0].counts(); len(stood) != 2 || gone != 1 || waits != 1 {
		t.Fatalf("stood %d ballots, the first withdrawn %d times after %d waits; want 2, 1, 1", len(stood), gone, waits)
	}
	if b, err := coord.FenceOf(l, func(*fakeBallot) bool { return true }); err != nil || b != stood[1] {
		t.Fatalf("fence = %v, %v; want the second ballot", b, err)
	}
	if waits, _ := stood[1].counts(); waits != 2 {
		t.Fatalf("elected after %d waits, want 2", waits)
	}
	if err := l.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if _, gone := stood[1].counts(); gone != 1 {
		t.Fatalf("Resign withdrew %d times, want 1", gone)
	}
}

// TestAbandonedCampaignWithdraws: a campaign whose context ends while it waits withdraws
// its candidate; an invalid election name is refused before anything stands.
func TestAbandonedCampaignWithdraws(t *testing.T) {
	g := coord.NewGroup()
	defer g.Close(func() {})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	b := &fakeBallot{line: []int{1}, sess: healthy(), withdrew: make(chan struct{}, 1)}
	stand := func(context.Context, string, string) (*fakeBallot, error) { return b, nil }
	_, err := coord.Campaign(ctx, g, testenv.Logger(t), "monitor", "mon-a", stand)
	withdrawn(t, b)
	if _, gone := b.counts(); !errors.Is(err, context.DeadlineExceeded) || gone != 1 {
		t.Fatalf("abandoned campaign: err = %v, %d withdrawals; want DeadlineExceeded and 1", err, gone)
	}
	if _, err := coord.Campaign(context.Background(), g, testenv.Logger(t), "a/b", "mon-a", stand); err == nil || b.gone != 1 {
		t.Fatalf("invalid election name: err = %v, want an error before standing", err)
	}
	g.Close(func() {})
	if _, err := coord.Campaign(context.Background(), g, testenv.Logger(t), "monitor", "mon-a", stand); !errors.Is(err, coord.ErrClosed) {
		t.Fatalf("campaign after Close: err = %v, want ErrClosed", err)
	}
}

// TestAbandonedCampaignReturnsWithItsContext: an abandoned campaign returns when its ctx
// ends, even when its withdrawal cannot get through; the withdrawal goes on in the background.
func TestAbandonedCampaignReturnsWithItsContext(t *testing.T) {
	g := coord.NewGroup()
	defer g.Close(func() {})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	b := &fakeBallot{line: []int{1}, sess: healthy(), block: true, withdrew: make(chan struct{}, 1)}
	start := time.Now()
	_, err := coord.Campaign(ctx, g, testenv.Logger(t), "monitor", "mon-a",
		func(context.Context, string, string) (*fakeBallot, error) { return b, nil })
	// The withdrawal's own bound is 2s: returning before it is returning with ctx.
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > time.Second {
		t.Fatalf("abandoned campaign: %v after %v; want DeadlineExceeded soon after the 100ms ctx", err, took)
	}
	g.Close(func() {}) // ends the withdrawal's wait, and waits for it
	if _, gone := b.counts(); gone != 1 {
		t.Fatalf("withdrawn %d times, want 1", gone)
	}
}

// TestNoLeadershipOnASessionThatWouldLoseIt: a candidate found lowest while its session is
// Suspended (or past its fence) is not elected until the session answers again, rather than
// handed a leadership that ends as it begins.
func TestNoLeadershipOnASessionThatWouldLoseIt(t *testing.T) {
	g := coord.NewGroup()
	defer g.Close(func() {})
	s := heardNow(false, true)
	b := &fakeBallot{line: []int{0}, sess: s, withdrew: make(chan struct{}, 1)}
	stand := func(context.Context, string, string) (*fakeBallot, error) { return b, nil }
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if l, err := coord.Campaign(ctx, g, testenv.Logger(t), "monitor", "mon-a", stand); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("campaign on a suspended session: leadership %T, err %v; want none (DeadlineExceeded)", l, err)
	}
	withdrawn(t, b)

	elected := make(chan error, 1)
	ctx = testenv.Context(t, 5*time.Second)
	go func() {
		l, err := coord.Campaign(ctx, g, testenv.Logger(t), "monitor", "mon-a", stand)
		if err == nil {
			select {
			case <-l.Done():
				err = errors.New("elected with Done already closed")
			default:
			}
		}
		elected <- err
	}()
	s.st.Set(healthy().st.Load()) // answered again
	if err := <-elected; err != nil {
		t.Fatal(err)
	}
}

// TestCampaignStandsAgainWhenLostAsItLeads: a candidate whose session is lost just as it is
// found lowest is withdrawn and a new one stands at once, rather than waiting for the lost
// session's standing to change.
func TestCampaignStandsAgainWhenLostAsItLeads(t *testing.T) {
	g := coord.NewGroup()
	defer g.Close(func() {})
	lost := heardNow(true, false)
	var stood []*fakeBallot
	stand := func(context.Context, string, string) (*fakeBallot, error) {
		b := &fakeBallot{line: []int{0}, sess: healthy()}
		if len(stood) == 0 {
			b.sess = lost
		}
		stood = append(stood, b)
		return b, nil
	}
	l, err := coord.Campaign(testenv.Context(t, 5*time.Second), g, testenv.Logger(t), "monitor", "mon-a", stand)
	if err != nil {
		t.Fatalf("campaign: %v after %d ballots", err, len(stood))
	}
	if b, _ := coord.FenceOf(l, func(*fakeBallot) bool { return true }); len(stood) != 2 || b != stood[1] {
		t.Fatalf("stood %d ballots; want the second elected", len(stood))
	}
}
