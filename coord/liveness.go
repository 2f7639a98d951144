package coord

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// Liveness is what a backend knows about one session (ZooKeeper) or lease (etcd) from its own
// requests. By the rule in State's doc, the backend cannot end the session before Heard plus
// its timeout T.
type Liveness struct {
	Heard   time.Time // send time of the latest answered request
	Pending time.Time // send time of the oldest unanswered request; zero if none
	Session int64     // the session Heard is about, as the probe said (a ZooKeeper session id)
	Lost    bool      // the backend has shown that the session ended (Prober.Lose)
}

// ProbeInterval is how often a backend asks to keep Heard fresh: six times a T, so that an
// overdue answer (OverdueAfter) is noticed with two intervals still in hand, and a healthy
// Heard is never older than a sixth of T plus a round trip.
func ProbeInterval(t time.Duration) time.Duration { return t / 6 }

// OverdueAfter is how long a request may go unanswered before the session counts as
// Suspended: far longer than a round trip on a healthy link, well before the fence.
func OverdueAfter(t time.Duration) time.Duration { return t / 3 }

// StaleAfter is how old Heard may get before the session counts as Suspended even without an
// overdue request (a prober that cannot get its requests out).
func StaleAfter(t time.Duration) time.Duration { return t / 2 }

// Standing is what l means at now for a backend timeout t: Suspended once a request went
// unanswered for OverdueAfter(t) or nothing was answered for StaleAfter(t), fenced at Heard +
// FenceAfter(t). The backend adds what only it knows (Down, Changed, a Lost it sees itself).
func (l Liveness) Standing(now time.Time, t time.Duration) Standing {
	st := Standing{Lost: l.Lost, Heard: l.Heard, FenceAt: l.Heard.Add(FenceAfter(t))}
	st.Next = st.FenceAt
	if stale := l.Heard.Add(StaleAfter(t)); !now.Before(stale) {
		st.Suspended = true
	} else if stale.Before(st.Next) {
		st.Next = stale
	}
	if !l.Pending.IsZero() {
		if overdue := l.Pending.Add(OverdueAfter(t)); now.After(overdue) {
			st.Suspended = true
		} else if overdue.Before(st.Next) {
			// Just past the instant, so that the wake-up finds the request overdue.
			st.Next = overdue.Add(time.Millisecond)
		}
	}
	return st
}

// Prober keeps a Liveness fresh: it sends one cheap request at a time, the next one
// ProbeInterval(T) after the previous one was sent or at once if the answer took longer. One
// at a time, so that Pending says since when the backend has been silent, and an answer is
// known to be for the request it came back to.
type Prober struct {
	probe   func(ctx context.Context) (session int64, counts bool)
	timeout func() time.Duration

	rec      notify.Value[Liveness]
	lost     chan struct{} // closed by Lose
	loseOnce sync.Once
}

// NewProber returns a Prober whose Heard starts at heard (the send time of the request that
// began the session, such as an etcd grant; zero if none). timeout returns the backend's T,
// asked before every wait (a backend may learn of a shorter one). probe sends one request and
// waits for its answer or ctx's end; it says in which session it was answered and whether the
// answer counts: only one that shows the backend heard the session at or after the send does.
func NewProber(heard time.Time, timeout func() time.Duration, probe func(ctx context.Context) (session int64, counts bool)) *Prober {
	p := &Prober{probe: probe, timeout: timeout, lost: make(chan struct{})}
	p.rec.Set(Liveness{Heard: heard})
	return p
}

// Get returns the record and a channel closed at its next change; any goroutine may call it.
func (p *Prober) Get() (Liveness, <-chan struct{}) { return p.rec.Get() }

// Load returns the record.
func (p *Prober) Load() Liveness { return p.rec.Load() }

// Lose marks the record Lost, closes Lost and ends Run, the probe in flight with it: the
// backend has shown that the session ended, or gave it up. Idempotent.
func (p *Prober) Lose() {
	p.loseOnce.Do(func() {
		p.rec.Update(func(l Liveness) Liveness { l.Lost = true; return l })
		close(p.lost)
	})
}

// Lost is closed by Lose.
func (p *Prober) Lost() <-chan struct{} { return p.lost }

// Run probes, the first time after wait, until ctx ends, stop is closed or Lose is called.
func (p *Prober) Run(ctx context.Context, stop <-chan struct{}, wait time.Duration) {
	ctx, cancel := notify.CancelOn(ctx, stop, p.lost)
	defer cancel()
	for notify.Sleep(ctx, wait, nil) {
		sent := time.Now()
		p.rec.Update(func(l Liveness) Liveness {
			if l.Pending.IsZero() {
				l.Pending = sent
			}
			return l
		})
		session, counts := p.probe(ctx)
		if counts {
			p.rec.Update(func(l Liveness) Liveness {
				// An answer in another session says nothing about the one Heard is about.
				if l.Session != session || sent.After(l.Heard) {
					l.Session, l.Heard = session, sent
				}
				l.Pending = time.Time{}
				return l
			})
		}
		if ctx.Err() != nil {
			return
		}
		// A probe that did not count stays pending; the next is sent an interval after it, or
		// at once if the answer (or failure) took longer.
		wait = time.Until(sent.Add(ProbeInterval(p.timeout())))
	}
}
