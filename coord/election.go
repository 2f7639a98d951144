package coord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// Ballot is one candidate's entry in an election, on the session (or lease) it was put on:
// the election recipe's primitives as a backend provides them. Line and Wait are called from
// one goroutine at a time (the campaign's, then the leader's: see Held.hold); each method
// returns soon after ctx ends.
type Ballot interface {
	// Line returns how many candidates stand before this one: 0 when it leads, a negative
	// count when it is lost (its entry or its session is gone). Errors are retried after a pause.
	Line(ctx context.Context) (ahead int, err error)
	// Wait returns once the entry the last Line looked at last (the candidate just before
	// this one, or this one when it leads) may have gone, or this one's session changed. As
	// it watches that one entry only, a leader's end wakes the next candidate, not the herd.
	Wait(ctx context.Context)
	// Candidacy is the election won in the last Line, for HoldLeadership.
	Candidacy() Candidacy
	// Withdraw gives the entry up when the campaign is abandoned or the candidate was
	// lost; ctx is its own, since the campaign's has often ended.
	Withdraw(ctx context.Context) error
}

// Campaign runs the leader-election recipe (see Elections.Campaign) on the ballots stand
// puts up, each a new entry on a session it waits for or makes. A candidate lost with its
// session stands again on a new one; an abandoned one withdraws its entry; errors of stand
// are retried after a pause. The leadership is held on g (HoldLeadership).
func Campaign[B Ballot](ctx context.Context, g *Group, log *slog.Logger, election, value string,
	stand func(ctx context.Context, election, value string) (B, error)) (Leadership, error) {
	if err := ValidateID(election); err != nil {
		return nil, fmt.Errorf("election name: %w", err)
	}
	ctx, cancel := notify.CancelOn(ctx, g.Closed(), nil)
	defer cancel()
	log = log.With("election", election, "candidate", value)
	// A lasting fault (no right to create the entries, say) is retried, but not 10 times a second.
	const minPause, maxPause = 100 * time.Millisecond, 5 * time.Second
	pause := minPause
	for {
		b, err := stand(ctx, election, value)
		if err == nil {
			pause = minPause
			var h *Held
			if h, err = elect(ctx, b, g, log); err == nil {
				return h, nil
			}
			// In the background, so an abandoned campaign returns with its ctx, not a link's
			// timeout later. (Once g closes, Close ends the session and the entry with it.)
			_ = g.Go(func() {
				wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				wctx, cancelC := notify.CancelOn(wctx, g.Closed(), nil)
				defer cancelC()
				_ = b.Withdraw(wctx)
			})
		}
		select {
		case <-g.Closed():
			return nil, ErrClosed
		default:
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("campaign %s: %w", election, ctx.Err())
		}
		if errors.Is(err, errLostCandidate) {
			log.Warn("campaign: candidate lost with its session; campaigning again")
			continue
		}
		log.Warn("campaign: retrying", "in", pause, "error", err)
		notify.Sleep(ctx, pause, nil)
		pause = min(2*pause, maxPause)
	}
}

var errLostCandidate = errors.New("candidate lost")

// Leader returns the value of the lowest candidate in the named election, which first reads
// (ok false when there is none: ErrNotFound).
func Leader(ctx context.Context, election string, first func(ctx context.Context, election string) (value string, ok bool, err error)) (string, error) {
	if err := ValidateID(election); err != nil {
		return "", fmt.Errorf("election name: %w", err)
	}
	v, ok, err := first(ctx, election)
	if err == nil && !ok {
		err = fmt.Errorf("leader of %s: %w", election, ErrNotFound)
	}
	return v, err
}

// FenceOf returns the ballot l (a Held) was won with, for a backend's fenced write: a B that
// mine accepts (the writing coordinator's), else an error; ErrNotLeader once l's Done is
// closed, as the backend's own check may still pass then (a ZooKeeper candidate outlives a
// leadership given up on a cut until its delete gets through).
func FenceOf[B Ballot](l Leadership, mine func(B) bool) (B, error) {
	var b B
	w, won := l.(interface{ Ballot() Ballot })
	if won {
		b, won = w.Ballot().(B)
	}
	if !won || !mine(b) {
		return b, fmt.Errorf("fence %T is not a leadership of this coordinator", l)
	}
	select {
	case <-l.Done():
		return b, ErrNotLeader
	default:
		return b, nil
	}
}

// elect waits until b leads, then holds its leadership.
func elect(ctx context.Context, b Ballot, g *Group, log *slog.Logger) (*Held, error) {
	for {
		ahead, err := b.Line(ctx)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			notify.Sleep(ctx, 100*time.Millisecond, nil)
			continue
		case ahead < 0:
			return nil, errLostCandidate
		case ahead == 0:
			// Not on a session HoldLeadership would give up at once, ending the leadership as
			// it began, and its entry with it.
			now := time.Now()
			st := b.Candidacy().Session.Standing(now)
			if st.Lost {
				return nil, errLostCandidate
			}
			if !st.answering(now) {
				select {
				case <-st.Changed[0]:
				case <-st.Changed[1]:
				case <-time.After(max(time.Until(st.Next), 10*time.Millisecond)):
				case <-ctx.Done():
				}
				continue
			}
			h, err := HoldLeadership(b, g, log)
			if err == nil {
				log.Info("elected", "entry", h.c.Name)
			}
			return h, err
		}
		b.Wait(ctx)
	}
}
