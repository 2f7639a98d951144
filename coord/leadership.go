package coord

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// Candidacy is a won election as its backend keeps it, for HoldLeadership.
type Candidacy struct {
	// Name identifies the candidate's entry in the log (its key or path).
	Name string
	// Session is what the entry lives on, judged more strictly than a registration's (see
	// HoldLeadership); the campaign's goroutine, then the holding one, call it in turn.
	Session Session
	// Timeout is the session timeout or lease TTL the Session is timed by.
	Timeout time.Duration
	// Resign deletes the candidate's entry, after Done is closed (Leadership.Resign).
	Resign func(ctx context.Context) error
	// Lost, if not nil, is called once, after Done is closed, if the leadership was taken
	// away (not resigned, nor ended by Close).
	Lost func()
}

// answering reports whether a session that is not Lost may hold a leadership at now (and
// a candidate be elected on it).
func (st Standing) answering(now time.Time) bool { return !st.Suspended && now.Before(st.FenceAt) }

// Held is a Leadership kept by HoldLeadership; its Ballot keeps what the backend's fenced
// writes check (the candidate's key and revision).
type Held struct {
	b      Ballot
	c      Candidacy
	log    *slog.Logger
	closed <-chan struct{} // the coordinator's: the leadership then ends
	done   chan struct{}
	once   sync.Once // closes done
}

// HoldLeadership starts on g the goroutine that watches b's won Candidacy and closes Done
// when it ends: when the candidate's entry goes (b's Line finds it lost), when the session
// is Lost, Suspended by its answers or past its FenceAt, or when the link has been Down for
// a third of the Timeout: Curator gives leadership up on suspension, and CURATOR-460 shows
// why waiting longer lets two leaders overlap. Writes are fenced regardless
// (Marks.SetQuarantine). log receives the end of the leadership.
func HoldLeadership(b Ballot, g *Group, log *slog.Logger) (*Held, error) {
	h := &Held{b: b, c: b.Candidacy(), log: log, closed: g.Closed(), done: make(chan struct{})}
	if err := g.Go(h.hold); err != nil {
		return nil, err
	}
	return h, nil
}

// Ballot is the ballot the leadership was won with (see FenceOf).
func (h *Held) Ballot() Ballot { return h.b }

// Done is closed when the leadership is lost or given up.
func (h *Held) Done() <-chan struct{} { return h.done }

// Resign ends the leadership and deletes the candidate's entry, electing the next one.
func (h *Held) Resign(ctx context.Context) error {
	h.end("resigned", false)
	return h.c.Resign(ctx)
}

// end closes Done once; taken says that the leadership was taken away, not given up.
func (h *Held) end(why string, taken bool) {
	h.once.Do(func() {
		lvl := slog.LevelWarn
		if !taken {
			lvl = slog.LevelInfo
		}
		h.log.Log(context.Background(), lvl, "leadership ended", "entry", h.c.Name, "why", why)
		// Done first: Lost may hand the leadership on (etcd revokes the lease, which deletes
		// the candidate key), and the next leader must not lead while this one still does.
		close(h.done)
		if taken && h.c.Lost != nil {
			h.c.Lost()
		}
	})
}

// hold ends the leadership when HoldLeadership says. The entry is followed on a goroutine of
// its own: a call to the backend can block while the link is down, and hold must keep time.
func (h *Held) hold() {
	ctx, cancel := notify.CancelOn(context.Background(), h.done, h.closed)
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			// Bounded, so that a call lost on a silent link is made again.
			lctx, cancelL := context.WithTimeout(ctx, OverdueAfter(h.c.Timeout))
			ahead, err := h.b.Line(lctx)
			cancelL()
			switch {
			case ctx.Err() != nil:
			case err != nil:
				notify.Sleep(ctx, 100*time.Millisecond, nil)
			case ahead < 0:
				h.end("candidate entry gone", true)
				return
			default:
				h.b.Wait(ctx)
			}
		}
	})
	defer func() {
		cancel()
		wg.Wait()
	}()
	var downSince time.Time
	for {
		now := time.Now()
		st := h.c.Session.Standing(now)
		if !st.Down {
			downSince = time.Time{}
		} else if downSince.IsZero() {
			downSince = now
		}
		giveUp := downSince.Add(h.c.Timeout / 3) // if Down
		switch {
		case st.Lost:
			h.end("session lost", true)
			return
		case !st.answering(now):
			h.end("the backend is not answering", true)
			return
		case st.Down && !now.Before(giveUp):
			h.end("disconnected", true)
			return
		}
		next := st.Next
		if st.Down && giveUp.Before(next) {
			next = giveUp
		}
		select {
		case <-st.Changed[0]:
		case <-st.Changed[1]:
		case <-time.After(time.Until(next)):
		case <-h.done: // the entry went, or Resign
			return
		case <-h.closed:
			h.end("coordinator closed", false)
			return
		}
	}
}
