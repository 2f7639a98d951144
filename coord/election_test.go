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

func (b *fakeBallot) Withdraw(context.Context) error {
	b.mu.Lock()
	b.gone++
	b.mu.Unlock()
	return nil
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
		b := &fakeBallot{line: []int{2, 1, 0}, sess: healthy()}
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
	if waits, gone := stood[0].counts(); len(stood) != 2 || gone != 1 || waits != 1 {
		t.Fatalf("stood %d ballots, the first withdrawn %d times after %d waits; want 2, 1, 1", len(stood), gone, waits)
	}
	if b, ok := coord.FenceOf[*fakeBallot](l); !ok || b != stood[1] {
		t.Fatalf("fence = %v, %v; want the second ballot", b, ok)
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
	b := &fakeBallot{line: []int{1}, sess: healthy()}
	stand := func(context.Context, string, string) (*fakeBallot, error) { return b, nil }
	_, err := coord.Campaign(ctx, g, testenv.Logger(t), "monitor", "mon-a", stand)
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
