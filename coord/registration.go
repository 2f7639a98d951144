package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// The registration machine: one member's way through the six States, for every backend. A
// backend gives it an Entry and the Sessions the entry lives on; the machine decides when the
// member counts as live, when it is fenced, and when it registers again.

var (
	// ErrMarked is what Entry.Create returns when a quarantine mark stands.
	ErrMarked = errors.New("quarantine mark stands")
	// ErrAgain is what Entry.Create returns when the entry changed under the attempt (it
	// vanished, or a stale one of this process was just deleted): try again at once.
	ErrAgain = errors.New("entry changed; trying again")

	errFencedAtOnce = errors.New("the session was past its fence when the create was answered")
)

// Session is what an entry lives on: a ZooKeeper session, an etcd lease. When it ends, the
// backend deletes the entry.
type Session interface {
	// Standing judges the session at now. It is called from the registration's goroutine
	// only, so it may keep state from one call to the next.
	Standing(now time.Time) Standing
}

// Standing is a Session's standing at one instant (see State for the rule it follows).
type Standing struct {
	// Lost: the session has ended (a new ZooKeeper session; a lease etcd no longer knows).
	Lost bool
	// Suspended: a request has gone unanswered too long (Liveness.Standing).
	Suspended bool
	// Down: the link is reported lost. A registration counts as Suspended while it is; a
	// leadership is given up after a third of the timeout (HoldLeadership).
	Down bool
	// Heard is the send time of the latest request the backend answered in the session.
	Heard time.Time
	// FenceAt is when the member must count as fenced, before the backend can end the session.
	FenceAt time.Time
	// Next is when the standing changes by itself if nothing more is heard.
	Next time.Time
	// Changed are closed when anything the standing rests on changes (a nil one never is).
	Changed [2]<-chan struct{}
}

// Created is what a successful Entry.Create (or one that met a mark) found: the entry's epoch
// (see Member.Epoch) and the member's quarantine mark if one stood and the backend read it.
type Created struct {
	Epoch int64
	Mark  *Quarantine
}

// Sight is what Entry.Look saw.
type Sight struct {
	// Exists: an entry for the member exists, whoever holds it.
	Exists bool
	// Ours: it is the entry Created on the Session given to Look.
	Ours bool
	// Mark is the member's quarantine mark, if one stands.
	Mark *Quarantine
}

// Entry is one member's entry in a backend, as the registration machine drives it. Methods
// are called from the registration's goroutine, one at a time, except Look, which the
// machine also calls from a goroutine of its own while it keeps time and answers Withdraw.
// Every method returns soon after ctx ends.
type Entry interface {
	// Session returns the session the next attempt creates the entry on, waiting for (or
	// making) one. ErrClosed means the coordinator closed; other errors are retried.
	Session(ctx context.Context) (Session, error)
	// Create creates the entry on s unless a quarantine mark stands, in one conditional
	// write, and returns its epoch; also when the entry is already s's (an earlier attempt's
	// answer was lost). It fails with ErrMarked (Created.Mark set if read), ErrDuplicate
	// (another live process holds the id), ErrAgain, or an error retried after a backoff.
	Create(ctx context.Context, s Session) (Created, error)
	// Look reads the entry (Ours when it is the one c created on s; s is nil when the
	// caller has none) and the member's mark in one read, and watches both from there:
	// changed is closed at the next change of either, or when the backend may have missed
	// one, and once ctx ends. After an error, changed (if not nil) is closed when looking
	// again may succeed; the machine also looks again after a pause.
	Look(ctx context.Context, s Session, c Created) (v Sight, changed <-chan struct{}, err error)
	// Delete deletes the created entry if it is still s's (Withdraw).
	Delete(ctx context.Context, s Session, c Created) error
	// Retire follows a fence: it makes sure the next Create gives a new epoch, never the
	// fenced one, which others may already count as gone.
	Retire(ctx context.Context, s Session, c Created)
	// Release gives the entry up for good once the registration has stopped (Deregister, or
	// a Register that failed). It is not called once the coordinator closed, since Close
	// ends every session and every entry with it.
	Release(ctx context.Context) error
}

// RegisterOptions is what a coordinator gives a registration besides its entry.
type RegisterOptions struct {
	// Timeout is the session timeout or lease TTL asked for. A different live process's
	// entry may be a crashed predecessor's whose session has not ended yet: Register waits
	// up to 1.5×Timeout for it to go before it fails with ErrDuplicate.
	Timeout time.Duration
	// Log receives the registration's state changes.
	Log *slog.Logger
}

// StartRegistration implements Registrar.Register: it runs the machine for m on a goroutine
// of the coordinator's g (stopped when g closes), on the entry newEntry makes of m's encoded
// data (without an epoch: the backend sets that).
func StartRegistration(ctx context.Context, g *Group, m Member, o RegisterOptions, newEntry func(data []byte) Entry) (Registration, error) {
	if err := ValidateID(m.ID); err != nil {
		return nil, err
	}
	m.Epoch = 0
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode member: %w", err)
	}
	r := &registration{
		id:       m.ID,
		e:        newEntry(data),
		o:        o,
		g:        g,
		after:    g.pending(m.ID),
		closed:   g.Closed(),
		withdraw: make(chan chan error),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	r.status.Set(Status{State: Registering, Since: time.Now()})
	first := make(chan error, 1)
	if err := g.Go(func() {
		defer close(r.done)
		r.run(first)
	}); err != nil {
		return nil, err
	}
	select {
	case err := <-first:
		if err != nil {
			r.abandon()
			return nil, err
		}
		return r, nil
	case <-ctx.Done():
		r.abandon()
		return nil, fmt.Errorf("register %s: %w", m.ID, ctx.Err())
	}
}

// registration is one member's entry kept by the machine. Its run goroutine owns the entry;
// other methods talk to it through channels, or use the entry once done is closed.
type registration struct {
	id     string
	e      Entry
	o      RegisterOptions
	g      *Group
	after  <-chan struct{} // a failed registration's release of the id, waited for first
	closed <-chan struct{} // g closed: stop

	status   notify.Value[Status]
	withdraw chan chan error
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// Status returns the current status and a channel closed at the next change.
func (r *registration) Status() (Status, <-chan struct{}) { return r.status.Get() }

// setState enters st at epoch, leaving the status alone when neither changes. Only run's
// goroutine sets the state, so only the mark (setMark) can change between check and update.
func (r *registration) setState(st State, epoch int64) {
	if cur := r.status.Load(); cur.State == st && cur.Epoch == epoch {
		return
	}
	r.o.Log.Info("registration", "node", r.id, "state", st.String(), "epoch", epoch)
	r.status.Update(func(s Status) Status {
		if s.State != st {
			s.Since = time.Now()
		}
		s.State, s.Epoch = st, epoch
		return s
	})
}

// setMark sets the mark, leaving the status alone when it is unchanged.
func (r *registration) setMark(q *Quarantine) {
	if !reflect.DeepEqual(r.status.Load().Mark, q) {
		r.status.Update(func(s Status) Status { s.Mark = q; return s })
	}
}

// Withdraw deletes the entry while a quarantine mark stands.
func (r *registration) Withdraw(ctx context.Context) error {
	if r.status.Load().State == Quarantined {
		return nil // already withdrawn
	}
	reply := make(chan error, 1)
	select {
	case r.withdraw <- reply:
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Deregister stops the registration and gives the entry up at once. Idempotent.
func (r *registration) Deregister(ctx context.Context) error {
	r.stopOnce.Do(func() { close(r.stop) })
	select {
	case <-r.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	// run set Closed before done was closed.
	if err := r.release(ctx); err != nil {
		return fmt.Errorf("deregister %s: %w", r.id, err)
	}
	return nil
}

// abandon stops a registration whose Register failed and gives up, in the background so that
// Register returns with its ctx, the entry a create may have made though its answer was lost.
// After one Timeout the session has ended anyway; once g closes, Close ends it.
func (r *registration) abandon() {
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
	r.g.cleanup(r.id, func() {
		ctx, cancel := notify.CancelOn(context.Background(), r.closed, nil)
		defer cancel()
		ctx, cancelT := context.WithTimeout(ctx, r.o.Timeout)
		defer cancelT()
		_ = r.release(ctx)
	})
}

// release gives the entry up, unless the coordinator closed: its Close ended every session,
// and every entry with it.
func (r *registration) release(ctx context.Context) error {
	select {
	case <-r.closed:
		return nil
	default:
		return r.e.Release(ctx)
	}
}

// run is the registration's loop: register, hold, and register again after every loss.
func (r *registration) run(first chan<- error) {
	ctx, cancel := notify.CancelOn(context.Background(), r.stop, r.closed)
	defer cancel()
	// Whatever ends the loop ends the entry: Deregister, a failed Register, or Close, whose
	// end of every session deletes it.
	defer r.setState(Closed, 0)
	settled := false
	settle := func(err error) {
		if !settled {
			settled = true
			first <- err
		}
	}
	const minBackoff, maxBackoff = 50 * time.Millisecond, time.Second
	backoff := minBackoff
	retry := func(msg string, err error) {
		if ctx.Err() == nil {
			r.o.Log.Warn(msg, "node", r.id, "error", err)
			notify.Sleep(ctx, backoff, nil)
			backoff = min(backoff*2, maxBackoff)
		}
	}
	duplicateSince := time.Time{}
	if r.after != nil {
		select {
		case <-r.after:
		case <-ctx.Done():
		}
	}
	for ctx.Err() == nil {
		s, err := r.e.Session(ctx)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				break
			}
			retry("register: no session; retrying", err)
			continue
		}
		c, err := r.e.Create(ctx, s)
		switch {
		case err == nil:
			r.setMark(c.Mark)
			live := false
			if r.hold(ctx, s, c, func() {
				live, backoff, duplicateSince = true, minBackoff, time.Time{}
				settle(nil)
			}) {
				r.e.Retire(ctx, s, c)
				if !live {
					retry("register: the entry was fenced as it was made; retrying", errFencedAtOnce)
				}
			}
		case errors.Is(err, ErrMarked):
			if c.Mark != nil {
				r.setMark(c.Mark)
			}
			r.setState(Quarantined, 0)
			settle(nil)
			r.awaitRelease(ctx)
		case errors.Is(err, ErrDuplicate):
			// It may be a crashed predecessor whose session has not ended yet: wait up to a
			// timeout and a half for its entry to go before calling it a duplicate.
			if duplicateSince.IsZero() {
				duplicateSince = time.Now()
				if !settled {
					// Register waits this long without a word otherwise.
					r.o.Log.Warn("node id held by another live process; waiting for its entry to go (a crashed predecessor's session ends by then)",
						"node", r.id, "wait", r.o.Timeout*3/2, "error", err)
				}
			}
			if !settled && time.Since(duplicateSince) > r.o.Timeout*3/2 {
				settle(fmt.Errorf("register %s: %w", r.id, err))
				return
			}
			if settled {
				r.setState(Fenced, 0)
				r.o.Log.Error("node id held by another live process; waiting for it to go", "node", r.id)
			}
			gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
			r.watch(gctx, nil, Created{}, func(v Sight) bool { return !v.Exists })
			gcancel()
		case errors.Is(err, ErrAgain):
		default:
			retry("register: retrying", err)
		}
	}
	settle(ErrClosed)
}

// hold keeps watch over a created entry until it is lost, withdrawn or the registration
// stops, and reports whether it was fenced. live is called once the entry first counts as
// live: not before the standing says so, since a create answered late may find the session
// past its fence already. The state follows the standing: Suspended while it says so,
// Registered when answers come back, Fenced at FenceAt or at once when the session is Lost.
// The entry is watched on a goroutine of its own (a call to the backend can block while the
// link is down), so that this loop always keeps time and a Withdraw waits at most until the
// next change of standing.
func (r *registration) hold(ctx context.Context, s Session, c Created, live func()) (fenced bool) {
	fctx, cancel := context.WithCancel(ctx)
	gone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if r.watch(fctx, s, c, func(v Sight) bool {
			r.setMark(v.Mark)
			return !v.Ours
		}) {
			close(gone)
		}
	})
	defer func() {
		cancel()
		wg.Wait()
	}()
	goneCh := (<-chan struct{})(gone)
	for {
		select {
		case <-r.closed:
			return false
		default:
		}
		if ctx.Err() != nil {
			return false
		}
		now := time.Now()
		st := s.Standing(now)
		if st.Lost || !now.Before(st.FenceAt) {
			r.o.Log.Warn("registration fenced: the backend may end the session from now on",
				"node", r.id, "epoch", c.Epoch, "session_lost", st.Lost,
				"since_last_answered_send", now.Sub(st.Heard).Round(time.Millisecond))
			r.setState(Fenced, 0)
			return true
		}
		suspended := st.Suspended || st.Down
		if suspended {
			r.setState(Suspended, c.Epoch)
		} else {
			r.setState(Registered, c.Epoch) // answered in time: it never left the live set
		}
		if live != nil {
			live()
			live = nil
		}
		select {
		case <-st.Changed[0]:
		case <-st.Changed[1]:
		case <-time.After(time.Until(st.Next)):
		case <-goneCh:
			if s.Standing(time.Now()).Lost {
				goneCh = nil // the session ended, and the entry with it: fence, above
				continue
			}
			r.o.Log.Warn("registration entry is gone; registering again", "node", r.id, "epoch", c.Epoch)
			r.setState(Registering, 0)
			return false
		case reply := <-r.withdraw:
			if r.status.Load().Mark == nil {
				reply <- nil
				continue
			}
			if suspended {
				reply <- fmt.Errorf("withdraw: %w", ErrUnavailable)
				continue
			}
			dctx, dcancel := context.WithDeadline(ctx, st.Next)
			err := r.e.Delete(dctx, s, c)
			dcancel()
			reply <- err
			if err == nil {
				r.setState(Quarantined, 0)
				return false
			}
		case <-ctx.Done():
			return false
		}
	}
}

// awaitRelease waits in Quarantined until the mark is released, answering Withdraw (there is
// nothing left to withdraw). The watch ends with ctx, and is always waited for.
func (r *registration) awaitRelease(ctx context.Context) {
	released := make(chan bool, 1)
	go func() {
		released <- r.watch(ctx, nil, Created{}, func(v Sight) bool {
			r.setMark(v.Mark)
			return v.Mark == nil
		})
	}()
	for {
		select {
		case ok := <-released:
			if ok {
				r.setState(Registering, 0)
			}
			return
		case reply := <-r.withdraw:
			reply <- nil
		}
	}
}

// watch looks at the entry and the mark (Entry.Look) until done says what it saw is what the
// caller waits for (true), or ctx ends (false), looking again at every change.
func (r *registration) watch(ctx context.Context, s Session, c Created, done func(Sight) bool) bool {
	for ctx.Err() == nil {
		lctx, cancel := context.WithCancel(ctx)
		v, changed, err := r.e.Look(lctx, s, c)
		if err == nil && done(v) {
			cancel()
			return true
		}
		var retry <-chan time.Time
		if err != nil {
			retry = time.After(100 * time.Millisecond)
		}
		select {
		case <-changed:
		case <-retry:
		case <-ctx.Done():
		}
		cancel()
	}
	return false
}
