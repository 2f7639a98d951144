package zkcoord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// Register keeps <root>/nodes/<id> with coord's registration machine (coord.StartRegistration).
func (c *Coordinator) Register(ctx context.Context, m coord.Member) (coord.Registration, error) {
	o := coord.RegisterOptions{Timeout: c.cfg.SessionTimeout, Log: c.log}
	return coord.StartRegistration(ctx, c.g, m, o, func(data []byte) coord.Entry {
		return &entry{c: c, id: m.ID, instance: m.Instance, data: data,
			path: c.nodesDir + "/" + m.ID, markPath: c.markPath(m.ID)}
	})
}

// entry is a member's znode, ephemeral in the session that created it.
type entry struct {
	c              *Coordinator
	id, instance   string
	data           []byte
	path, markPath string
}

// regSession is one ZooKeeper session as a registration sees it, beside the prober's record.
type regSession struct {
	c  *Coordinator
	id int64
	// heard is the send time of a request the ensemble answered in the session: at first
	// the instant before the create was sent (Create succeeding means it was answered).
	heard     time.Time
	downSince time.Time // when the library reported the connection lost; zero while connected
}

// Session waits for a session: heard is then earlier than every request Create sends.
func (e *entry) Session(ctx context.Context) (coord.Session, error) {
	if _, err := e.c.waitSession(ctx); err != nil {
		return nil, err
	}
	return &regSession{c: e.c, id: e.c.conn.SessionID(), heard: time.Now()}, nil
}

// Standing is coord.Liveness.Standing of the prober's record for this session, with what the
// library reports: Down while disconnected, fenced one T after the disconnect if that comes
// first (only if the prober is starved), Lost once a new session shows this one expired.
func (s *regSession) Standing(now time.Time) coord.Standing {
	ss, changed := s.c.sess.Get()
	l, heardChanged := s.c.prober.Get()
	if l.Session == s.id && l.Heard.After(s.heard) {
		s.heard = l.Heard // a probe answered in this session since
	}
	pending := l.Pending
	if !pending.IsZero() && pending.Before(s.heard) {
		// Sent before a request answered in this session, it is answered already (the ensemble
		// answers a session's requests in order), an expired session's (which says nothing of
		// this one), or queued after that request: unanswered since heard at the most.
		pending = s.heard
	}
	out := coord.Liveness{Heard: s.heard, Pending: pending}.Standing(now, s.c.timeout())
	out.Changed = [2]<-chan struct{}{changed, heardChanged}
	if ss.connected {
		s.downSince = time.Time{}
		out.Lost = s.c.conn.SessionID() != s.id
	} else {
		if s.downSince.IsZero() {
			s.downSince = now
		}
		out.Down = true // cut off: the ensemble may expire the session without our knowing
		out.FenceAt = earliest(out.FenceAt, s.downSince.Add(s.c.timeout()))
	}
	out.Next = earliest(out.Next, out.FenceAt)
	return out
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Create registers the entry unless a quarantine mark stands, in one transaction: creating
// and deleting the mark's znode fails with NodeExists exactly when a mark is there.
func (e *entry) Create(ctx context.Context, s coord.Session) (coord.Created, error) {
	sessID := s.(*regSession).id
	res, err := call(ctx, func() ([]zk.MultiResponse, error) {
		return e.c.conn.Multi(
			&zk.CreateRequest{Path: e.markPath, Acl: e.c.acl},
			&zk.DeleteRequest{Path: e.markPath, Version: -1},
			&zk.CreateRequest{Path: e.path, Data: e.data, Acl: e.c.acl, Flags: zk.FlagEphemeral},
		)
	})
	if err == nil {
		return e.adopt(ctx, sessID)
	}
	if len(res) == 3 {
		switch {
		case errors.Is(res[0].Error, zk.ErrNodeExists):
			var cr coord.Created
			if data, _, err := call2(ctx, e.c.conn.Get, e.markPath); err == nil {
				cr.Mark = new(coord.ParseQuarantine(e.id, data))
			}
			return cr, coord.ErrMarked
		case errors.Is(res[2].Error, zk.ErrNodeExists):
			// A create that failed with connection loss may have succeeded; or the entry is
			// left from our expired session; or another process holds the id.
			return e.adopt(ctx, sessID)
		}
	}
	return coord.Created{}, err
}

// adopt looks at the existing entry: this session's gives the epoch; this process's from an
// older session is deleted for the next attempt; anyone else's is a duplicate. It answers a
// plain error, not coord.ErrAgain, so the next attempt waits the backoff (50ms at first).
func (e *entry) adopt(ctx context.Context, sessID int64) (coord.Created, error) {
	data, st, err := call2(ctx, e.c.conn.Get, e.path)
	if errors.Is(err, zk.ErrNoNode) {
		return coord.Created{}, errors.New("entry vanished; retrying")
	}
	if err != nil {
		return coord.Created{}, err
	}
	if st.EphemeralOwner == sessID {
		return coord.Created{Epoch: st.Czxid}, nil
	}
	var other coord.Member
	_ = json.Unmarshal(data, &other)
	if other.Instance == e.instance && st.EphemeralOwner != 0 {
		// Left by this process's previous, expired session (KAFKA-1387): the ensemble will
		// delete it anyway; deleting it now (only this version) lets us come back sooner.
		e.c.log.Info("deleting own stale entry from an expired session", "node", e.id,
			"owner", fmt.Sprintf("%#x", st.EphemeralOwner), "session", fmt.Sprintf("%#x", sessID))
		err := e.c.delete(ctx, e.path, st.Version)
		if err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
			return coord.Created{}, err
		}
		return coord.Created{}, errors.New("deleted stale entry; retrying")
	}
	return coord.Created{}, fmt.Errorf("%w (instance %s, session %#x, started %s)", coord.ErrDuplicate,
		other.Instance, st.EphemeralOwner, other.StartedAt.Format(time.RFC3339))
}

// Look arms one-shot watches on the entry and the mark; a session change closes changed too,
// as events during a disconnection are lost. Each look arms both again, leaving the watch
// that did not fire registered until its path's next event or the session's end: a channel
// or two per (rare) change of the other path or reconnect, cheaper than tracking them.
func (e *entry) Look(ctx context.Context, s coord.Session, cr coord.Created) (coord.Sight, <-chan struct{}, error) {
	ss, sessChanged := e.c.sess.Get()
	if !ss.connected {
		return coord.Sight{}, sessChanged, fmt.Errorf("look: %w", coord.ErrUnavailable)
	}
	actx, cancel := e.c.bounded(ctx)
	defer cancel()
	ok, st, nodeCh, err := call3(actx, e.c.conn.ExistsW, e.path)
	if err != nil {
		return coord.Sight{}, sessChanged, err
	}
	q, markCh, err := e.readMarkW(actx)
	if err != nil {
		return coord.Sight{}, sessChanged, err
	}
	v := coord.Sight{Exists: ok, Mark: q}
	if rs, mine := s.(*regSession); mine && ok {
		v.Ours = st.EphemeralOwner == rs.id && st.Czxid == cr.Epoch
	}
	return v, coord.LookChanged(ctx, nodeCh, markCh, sessChanged), nil
}

// readMarkW reads the member's quarantine mark, if any, and watches it.
func (e *entry) readMarkW(ctx context.Context) (*coord.Quarantine, <-chan zk.Event, error) {
	ok, _, ch, err := call3(ctx, e.c.conn.ExistsW, e.markPath)
	if err != nil || !ok {
		return nil, ch, err
	}
	data, _, err := call2(ctx, e.c.conn.Get, e.markPath)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, ch, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return new(coord.ParseQuarantine(e.id, data)), ch, nil
}

// Delete and Release delete the entry if the current session owns it.
func (e *entry) Delete(ctx context.Context, _ coord.Session, _ coord.Created) error {
	return e.c.deleteOwned(ctx, e.path)
}

func (e *entry) Release(ctx context.Context) error { return e.c.deleteOwned(ctx, e.path) }

// Retire deletes the entry once the ensemble answers, unless the session changed: the old one
// expired, and the entry with it.
func (e *entry) Retire(ctx context.Context, s coord.Session, _ coord.Created) {
	sessID := s.(*regSession).id
	for {
		if _, err := e.c.waitSession(ctx); err != nil || e.c.conn.SessionID() != sessID {
			return
		}
		dctx, cancel := e.c.bounded(ctx)
		err := e.c.deleteOwned(dctx, e.path)
		cancel()
		if err == nil || !notify.Sleep(ctx, 100*time.Millisecond, e.c.g.Closed()) {
			return
		}
	}
}

// deleteOwned deletes znode p if the current session owns it (an older session's ends with it).
func (c *Coordinator) deleteOwned(ctx context.Context, p string) error {
	sessID := c.conn.SessionID()
	_, st, err := call2(ctx, c.conn.Get, p)
	if err == nil && st.EphemeralOwner == sessID {
		err = c.delete(ctx, p, st.Version)
	}
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return wrap("delete "+p, err)
}
