package zkcoord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// errMarked: the registration attempt failed because a quarantine mark stands.
var errMarked = errors.New("quarantine mark stands")

// Register creates <root>/nodes/<id> and keeps it: see coord.Coordinator.
func (c *Coordinator) Register(ctx context.Context, m coord.Member) (coord.Registration, error) {
	if err := coord.ValidateID(m.ID); err != nil {
		return nil, err
	}
	m.Epoch = 0
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode member: %w", err)
	}
	r := &registration{
		c:        c,
		m:        m,
		data:     data,
		path:     c.memberPath(m.ID),
		markPath: c.markPath(m.ID),
		withdraw: make(chan chan error),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	r.status.Set(coord.Status{State: coord.Registering})
	first := make(chan error, 1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(r.done)
		r.run(first)
	}()
	select {
	case err := <-first:
		if err != nil {
			r.stopOnce.Do(func() { close(r.stop) })
			<-r.done
			return nil, err
		}
		return r, nil
	case <-ctx.Done():
		r.stopOnce.Do(func() { close(r.stop) })
		<-r.done
		return nil, fmt.Errorf("register %s: %w", m.ID, ctx.Err())
	}
}

type registration struct {
	c              *Coordinator
	m              coord.Member
	data           []byte
	path, markPath string

	status   notify.Value[coord.Status]
	withdraw chan chan error
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func (r *registration) Status() (coord.Status, <-chan struct{}) { return r.status.Get() }

func (r *registration) setState(st coord.State, epoch int64) {
	r.status.Update(func(s coord.Status) coord.Status {
		if s.State != st || s.Epoch != epoch {
			r.c.log.Info("registration", "node", r.m.ID, "state", st.String(), "epoch", epoch)
		}
		if s.State != st || s.Since.IsZero() {
			s.Since = time.Now()
		}
		s.State, s.Epoch = st, epoch
		return s
	})
}

// keepState is setState that leaves the status (and its waiters) alone when nothing changes.
func (r *registration) keepState(st coord.State, epoch int64) {
	if cur := r.status.Load(); cur.State != st || cur.Epoch != epoch {
		r.setState(st, epoch)
	}
}

func (r *registration) setMark(q *coord.Quarantine) {
	r.status.Update(func(s coord.Status) coord.Status { s.Mark = q; return s })
}

// Withdraw deletes the entry while a quarantine mark stands.
func (r *registration) Withdraw(ctx context.Context) error {
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

// Deregister deletes the entry and stops the registration.
func (r *registration) Deregister(ctx context.Context) error {
	r.stopOnce.Do(func() { close(r.stop) })
	select {
	case <-r.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := r.deleteOwn(ctx)
	r.setState(coord.Closed, 0)
	return err
}

// stopCtx is a context that ends when the registration is stopped or the coordinator closed.
func (r *registration) stopCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-r.stop:
		case <-r.c.closed:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

// run is the registration's loop: register, hold, and register again after every loss.
func (r *registration) run(first chan<- error) {
	ctx, cancel := r.stopCtx()
	defer cancel()
	settled := false
	settle := func(err error) {
		if !settled {
			settled = true
			first <- err
		}
	}
	backoff := 50 * time.Millisecond
	duplicateSince := time.Time{}
	for ctx.Err() == nil {
		if _, err := r.c.waitSession(ctx); err != nil {
			settle(err)
			return
		}
		sessID := r.c.conn.SessionID()
		sent := time.Now() // every request create makes is sent after this
		epoch, err := r.create(ctx, sessID)
		switch {
		case err == nil:
			backoff = 50 * time.Millisecond
			duplicateSince = time.Time{}
			r.setState(coord.Registered, epoch)
			settle(nil)
			r.hold(ctx, sessID, epoch, sent)
		case errors.Is(err, errMarked):
			if data, _, err := callGet(ctx, r.c, r.markPath); err == nil {
				q := coord.ParseQuarantine(r.m.ID, data)
				r.setMark(&q)
			}
			r.setState(coord.Quarantined, 0)
			settle(nil)
			r.waitMarkGone(ctx)
		case errors.Is(err, coord.ErrDuplicate):
			// A different live process holds the id. It may be a crashed predecessor whose
			// session the ensemble has not expired yet: wait up to a session timeout and a
			// half for its entry to go before calling it a duplicate.
			if duplicateSince.IsZero() {
				duplicateSince = time.Now()
			}
			if !settled && time.Since(duplicateSince) > r.c.cfg.SessionTimeout*3/2 {
				settle(fmt.Errorf("register %s: %w", r.m.ID, err))
				return
			}
			if settled {
				r.setState(coord.Fenced, 0)
				r.c.log.Error("node id held by another live process; waiting for it to go", "node", r.m.ID)
			}
			r.waitGone(ctx, r.path, 2*time.Second)
		default:
			r.c.log.Warn("register: retrying", "node", r.m.ID, "error", err)
			if !r.c.sleep(ctx, backoff) {
				break
			}
			backoff = min(backoff*2, time.Second)
		}
	}
	settle(coord.ErrClosed)
}

// create registers the entry unless a quarantine mark stands, in one transaction: creating
// and deleting the mark's znode fails with NodeExists exactly when a mark is there.
func (r *registration) create(ctx context.Context, sessID int64) (int64, error) {
	res, err := call(ctx, func() ([]zk.MultiResponse, error) {
		return r.c.conn.Multi(
			&zk.CreateRequest{Path: r.markPath, Acl: r.c.acl},
			&zk.DeleteRequest{Path: r.markPath, Version: -1},
			&zk.CreateRequest{Path: r.path, Data: r.data, Acl: r.c.acl, Flags: zk.FlagEphemeral},
		)
	})
	if err == nil {
		return r.adopt(ctx, sessID)
	}
	if len(res) == 3 {
		switch {
		case errors.Is(res[0].Error, zk.ErrNodeExists):
			return 0, errMarked
		case errors.Is(res[2].Error, zk.ErrNodeExists):
			// A create that failed with connection loss may have succeeded; or the entry is
			// left from our expired session; or another process holds the id.
			return r.adopt(ctx, sessID)
		}
	}
	return 0, err
}

// adopt looks at the existing entry: ours (this session) gives the epoch; ours from an
// older session is deleted so the next attempt can create it; anyone else's is a duplicate.
func (r *registration) adopt(ctx context.Context, sessID int64) (int64, error) {
	type got struct {
		data []byte
		st   *zk.Stat
	}
	g, err := call(ctx, func() (got, error) {
		d, st, err := r.c.conn.Get(r.path)
		return got{d, st}, err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return 0, errors.New("entry vanished; retrying")
	}
	if err != nil {
		return 0, err
	}
	if g.st.EphemeralOwner == sessID {
		return g.st.Czxid, nil
	}
	var other coord.Member
	_ = json.Unmarshal(g.data, &other)
	if other.Instance == r.m.Instance && g.st.EphemeralOwner != 0 {
		// Left by this process's previous, expired session (KAFKA-1387): the ensemble will
		// delete it anyway; deleting it now (only this version) lets us come back sooner.
		r.c.log.Info("deleting own stale entry from an expired session", "node", r.m.ID,
			"owner", fmt.Sprintf("%#x", g.st.EphemeralOwner), "session", fmt.Sprintf("%#x", sessID))
		_, err := call(ctx, func() (struct{}, error) { return struct{}{}, r.c.conn.Delete(r.path, g.st.Version) })
		if err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
			return 0, err
		}
		return 0, errors.New("deleted stale entry; retrying")
	}
	return 0, fmt.Errorf("%w (instance %s, session %#x, started %s)", coord.ErrDuplicate,
		other.Instance, g.st.EphemeralOwner, other.StartedAt.Format(time.RFC3339))
}

// hold keeps watch over a created entry until it is lost, withdrawn or the registration
// stops. It returns when the loop must register again. heard is the send time of a request
// the ensemble answered in session sessID (the create).
//
// The state follows the liveness record (liveness.go), with T the session timeout the
// coordinator times itself by: Suspended as soon as the library reports the connection lost
// or the ensemble has left a probe unanswered for T/3 (or answered nothing for T/2);
// Registered again when answers come back; Fenced at the latest answered send time plus
// FenceAfter(T), which is before the ensemble can have expired the session, or one T after
// the library reported the disconnect if that came first (it cannot, unless the prober is
// starved), or at once when a new session shows that the old one expired. Calls that wait on
// the ensemble are bounded by the next of those instants, so a silent link never holds up a
// change of state.
func (r *registration) hold(ctx context.Context, sessID, epoch int64, heard time.Time) {
	var (
		nodeCh, markCh <-chan zk.Event
		armedGen       uint64
		downSince      time.Time
		fenced         bool
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s, changed := r.c.sess.Get()
		_, heardChanged := r.c.heard.Get()
		if s.closed || ctx.Err() != nil {
			return
		}
		now := time.Now()
		st := r.c.standing(now, sessID, heard)
		heard = st.heard
		fenceAt := st.fenceAt
		if s.connected {
			downSince = time.Time{}
		} else {
			if downSince.IsZero() {
				downSince = now
			}
			fenceAt = earliest(fenceAt, downSince.Add(r.c.timeout()))
		}
		if !fenced && !now.Before(fenceAt) {
			fenced = true
			r.c.log.Warn("registration fenced: the ensemble may expire the session from now on",
				"node", r.m.ID, "epoch", epoch, "connected", s.connected,
				"since_last_answered_send", now.Sub(heard).Round(time.Millisecond))
			r.setState(coord.Fenced, 0)
		}
		next := earliest(st.next, fenceAt)
		if !fenced {
			timer.Reset(time.Until(next))
		}
		if !s.connected {
			// Cut off: the ensemble may expire the session without our knowing.
			if !fenced {
				r.keepState(coord.Suspended, epoch)
			}
			select {
			case <-changed:
			case <-heardChanged:
			case <-timer.C:
			case reply := <-r.withdraw:
				reply <- fmt.Errorf("withdraw: %w", coord.ErrUnavailable)
			case <-ctx.Done():
				return
			}
			continue
		}
		if r.c.conn.SessionID() != sessID {
			// A new session: the old one expired and its ephemeral entry with it.
			r.setState(coord.Fenced, 0)
			return
		}
		if fenced {
			// Within the same session, but this entry's epoch was fenced: routers may have
			// sent its clients' messages to mailboxes meanwhile. Replace it, so the node comes
			// back under a new epoch and nothing addressed to the old one is accepted.
			dctx, cancel := context.WithTimeout(ctx, coord.OverdueAfter(r.c.timeout()))
			err := r.deleteOwn(dctx)
			cancel()
			if err != nil {
				if !r.c.sleep(ctx, 100*time.Millisecond) {
					return
				}
				continue
			}
			return
		}
		if st.suspended {
			r.keepState(coord.Suspended, epoch)
		} else {
			// Answered within the session timeout: the entry never left the live set.
			r.keepState(coord.Registered, epoch)
		}
		if s.gen != armedGen {
			nodeCh, markCh, armedGen = nil, nil, s.gen
		}
		cctx, cancel := context.WithDeadline(ctx, next)
		gone, err := r.arm(cctx, sessID, &nodeCh, &markCh)
		if gone {
			cancel()
			r.c.log.Warn("registration entry is gone; registering again", "node", r.m.ID)
			r.setState(coord.Registering, 0)
			return
		}
		if err != nil {
			cancel()
			if !r.pause(ctx, next) {
				return
			}
			continue
		}
		select {
		case <-changed:
		case <-heardChanged:
		case <-timer.C:
		case <-nodeCh:
			nodeCh = nil
		case <-markCh:
			markCh = nil
		case reply := <-r.withdraw:
			if r.status.Load().Mark == nil {
				reply <- nil
				break
			}
			err := r.deleteOwn(cctx)
			reply <- err
			if err == nil {
				cancel()
				r.setState(coord.Quarantined, 0)
				return
			}
		case <-ctx.Done():
		}
		cancel()
	}
}

// arm sets whichever of the entry's and the mark's watches is not set. gone reports that the
// entry no longer exists in session sessID.
func (r *registration) arm(ctx context.Context, sessID int64, nodeCh, markCh *<-chan zk.Event) (gone bool, err error) {
	if *nodeCh == nil {
		type got struct {
			ok bool
			st *zk.Stat
			ch <-chan zk.Event
		}
		g, err := call(ctx, func() (got, error) {
			ok, st, ch, err := r.c.conn.ExistsW(r.path)
			return got{ok, st, ch}, err
		})
		if err != nil {
			return false, err
		}
		if !g.ok || g.st.EphemeralOwner != sessID {
			return true, nil
		}
		*nodeCh = g.ch
	}
	if *markCh == nil {
		q, ch, err := r.readMarkW(ctx)
		if err != nil {
			return false, err
		}
		r.setMark(q)
		*markCh = ch
	}
	return false, nil
}

// pause waits 100ms before a retry, or less if the registration's standing changes sooner;
// false if ctx ends or the coordinator closes first.
func (r *registration) pause(ctx context.Context, next time.Time) bool {
	return r.c.sleep(ctx, max(0, min(100*time.Millisecond, time.Until(next))))
}

// earliest returns the earlier of a and b.
func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// readMarkW reads the member's quarantine mark, if any, and watches it.
func (r *registration) readMarkW(ctx context.Context) (*coord.Quarantine, <-chan zk.Event, error) {
	type got struct {
		q  *coord.Quarantine
		ch <-chan zk.Event
	}
	g, err := call(ctx, func() (got, error) {
		ok, _, ch, err := r.c.conn.ExistsW(r.markPath)
		if err != nil || !ok {
			return got{nil, ch}, err
		}
		data, _, err := r.c.conn.Get(r.markPath)
		if errors.Is(err, zk.ErrNoNode) {
			return got{nil, ch}, nil
		}
		if err != nil {
			return got{}, err
		}
		q := coord.ParseQuarantine(r.m.ID, data)
		return got{&q, ch}, nil
	})
	return g.q, g.ch, err
}

// waitMarkGone waits in Quarantined until the mark is released.
func (r *registration) waitMarkGone(ctx context.Context) {
	for {
		if _, err := r.c.waitSession(ctx); err != nil {
			return
		}
		q, ch, err := r.readMarkW(ctx)
		if err != nil {
			if !r.c.sleep(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		r.setMark(q)
		if q == nil {
			r.setState(coord.Registering, 0)
			return
		}
		_, changed := r.c.sess.Get()
		select {
		case <-ch:
		case <-changed:
		case reply := <-r.withdraw:
			reply <- nil // already withdrawn
		case <-ctx.Done():
			return
		}
	}
}

// waitGone waits until p is deleted, at most d.
func (r *registration) waitGone(ctx context.Context, p string, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	type got struct {
		ok bool
		ch <-chan zk.Event
	}
	g, err := call(ctx, func() (got, error) {
		ok, _, ch, err := r.c.conn.ExistsW(p)
		return got{ok, ch}, err
	})
	if err != nil || !g.ok {
		return
	}
	select {
	case <-g.ch:
	case <-ctx.Done():
	}
}

// deleteOwn deletes the entry if this process's current session owns it.
func (r *registration) deleteOwn(ctx context.Context) error {
	sessID := r.c.conn.SessionID()
	_, st, err := callGet(ctx, r.c, r.path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return wrap("deregister", err)
	}
	if st.EphemeralOwner != sessID {
		return nil
	}
	_, err = call(ctx, func() (struct{}, error) { return struct{}{}, r.c.conn.Delete(r.path, st.Version) })
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return wrap("deregister", err)
}

func callGet(ctx context.Context, c *Coordinator, p string) ([]byte, *zk.Stat, error) {
	type got struct {
		d  []byte
		st *zk.Stat
	}
	g, err := call(ctx, func() (got, error) {
		d, st, err := c.conn.Get(p)
		return got{d, st}, err
	})
	return g.d, g.st, err
}
