package memcoord

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// Register keeps the member's entry in the client's session, by coord's registration machine.
func (c *Coordinator) Register(ctx context.Context, m coord.Member) (coord.Registration, error) {
	o := coord.RegisterOptions{Timeout: c.timeout, Log: c.log}
	return coord.StartRegistration(ctx, c.g, m, o, func(data []byte) coord.Entry {
		// As stored: what a backend lists is the decoded encoding, not the caller's value.
		return &entry{c: c, m: coord.DecodeMember(m.ID, data, 0)}
	})
}

// entry is a member's entry in the cluster, owned by a session of its client.
type entry struct {
	c *Coordinator
	m coord.Member // without an epoch: each created entry is a copy with its own
}

// session is one session of the client. The cluster always answers, so it never counts as
// Suspended and never has to fence by time; it is lost when ExpireSession replaces it.
type session struct {
	c  *Coordinator
	id int64
}

// Standing: heard now, so the fence is always a day away.
func (s *session) Standing(now time.Time) coord.Standing {
	cur, changed := s.c.sess.Get()
	later := now.Add(24 * time.Hour)
	return coord.Standing{Lost: cur != s.id, Heard: now, FenceAt: later, Next: later, Changed: [2]<-chan struct{}{changed}}
}

func (e *entry) Session(context.Context) (coord.Session, error) {
	select {
	case <-e.c.g.Closed():
		return nil, coord.ErrClosed
	default:
	}
	return &session{c: e.c, id: e.c.sess.Load()}, nil
}

// Create creates the entry unless a mark stands, all in one step under the cluster's lock.
func (e *entry) Create(_ context.Context, s coord.Session) (cr coord.Created, err error) {
	sess, m := s.(*session).id, e.m
	e.c.cl.write(func() {
		cl := e.c.cl
		if e.c.sess.Load() != sess {
			err = errors.New("session expired; retrying")
			return
		}
		if mk, ok := cl.marks[m.ID]; ok {
			cr.Mark, err = &mk, coord.ErrMarked
			return
		}
		if cur, ok := cl.members[m.ID]; ok {
			switch {
			case cur.sess == sess:
				cr.Epoch = cur.m.Epoch
			case cur.m.Instance == m.Instance:
				// Left by an older session of this process: delete it, the next attempt creates it.
				delete(cl.members, m.ID)
				err = coord.ErrAgain
			default:
				err = fmt.Errorf("%w (instance %s, started %s)", coord.ErrDuplicate,
					cur.m.Instance, cur.m.StartedAt.Format(time.RFC3339))
			}
			return
		}
		cl.rev++
		m.Epoch = cl.rev
		cl.members[m.ID] = member{m: m, sess: sess}
		cr.Epoch = m.Epoch
	})
	return cr, err
}

// Look reads the entry and the mark, and returns a channel closed at the next write.
func (e *entry) Look(_ context.Context, s coord.Session, cr coord.Created) (coord.Sight, <-chan struct{}, error) {
	var v coord.Sight
	changed := e.c.cl.read(func() {
		m, ok := e.c.cl.members[e.m.ID]
		ss, _ := s.(*session)
		v.Exists, v.Ours = ok, ok && ss != nil && m.sess == ss.id && m.m.Epoch == cr.Epoch
		if mk, marked := e.c.cl.marks[e.m.ID]; marked {
			v.Mark = &mk
		}
	})
	return v, changed, nil
}

// deleteIf deletes the entry if keep says it is the one meant.
func (e *entry) deleteIf(keep func(member) bool) {
	e.c.cl.write(func() {
		if m, ok := e.c.cl.members[e.m.ID]; ok && keep(m) {
			delete(e.c.cl.members, e.m.ID)
		}
	})
}

func (e *entry) Delete(_ context.Context, _ coord.Session, cr coord.Created) error {
	e.deleteIf(func(m member) bool { return m.m.Epoch == cr.Epoch })
	return nil
}

// Retire deletes the fenced entry if its session still holds it: it comes back under a new epoch.
func (e *entry) Retire(_ context.Context, s coord.Session, cr coord.Created) {
	sess := s.(*session).id
	e.deleteIf(func(m member) bool { return m.sess == sess && m.m.Epoch == cr.Epoch })
}

func (e *entry) Release(context.Context) error {
	sess := e.c.sess.Load()
	e.deleteIf(func(m member) bool { return m.sess == sess })
	return nil
}
