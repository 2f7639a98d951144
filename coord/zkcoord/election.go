package zkcoord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// Campaign runs ZooKeeper's leader-election recipe: an ephemeral sequential candidate znode
// per candidate; the lowest sequence leads; each other candidate watches only its
// predecessor, so a leader's death wakes one candidate, not the herd.
func (c *Coordinator) Campaign(ctx context.Context, election, candidate string) (coord.Leadership, error) {
	if err := coord.ValidateID(election); err != nil {
		return nil, fmt.Errorf("election name: %w", err)
	}
	dir := c.electDir + "/" + election
	if err := c.ensurePath(ctx, dir); err != nil {
		return nil, wrap("campaign", err)
	}
	for {
		if _, err := c.waitSession(ctx); err != nil {
			return nil, err
		}
		sessID := c.conn.SessionID()
		p, err := call(ctx, func() (string, error) {
			return c.conn.CreateProtectedEphemeralSequential(dir+"/n_", []byte(candidate), c.acl)
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !c.sleep(ctx, 100*time.Millisecond) {
				return nil, coord.ErrClosed
			}
			continue
		}
		l, err := c.await(ctx, dir, p, sessID)
		if err == nil {
			return l, nil
		}
		// Give up the candidate znode before retrying or returning.
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = callDelete(dctx, c, p, -1)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, errLostCandidate) {
			return nil, err
		}
	}
}

var errLostCandidate = errors.New("candidate znode lost")

// seq is the sequence suffix ZooKeeper appended to a candidate's name.
func seq(name string) string { return name[len(name)-10:] }

// await waits until the candidate p is the lowest in dir.
func (c *Coordinator) await(ctx context.Context, dir, p string, sessID int64) (*leadership, error) {
	me := base(p)
	for {
		sent := time.Now()
		names, err := call(ctx, func() ([]string, error) { n, _, err := c.conn.Children(dir); return n, err })
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if c.conn.SessionID() != sessID {
				return nil, errLostCandidate
			}
			if !c.sleep(ctx, 100*time.Millisecond) {
				return nil, coord.ErrClosed
			}
			continue
		}
		sort.Slice(names, func(i, j int) bool { return seq(names[i]) < seq(names[j]) })
		idx := -1
		for i, n := range names {
			if n == me {
				idx = i
			}
		}
		if idx < 0 {
			return nil, errLostCandidate
		}
		if idx == 0 {
			return c.lead(p, sessID, sent)
		}
		ok, _, predCh, err := callExistsW(ctx, c, dir+"/"+names[idx-1])
		if err != nil || !ok {
			continue
		}
		_, changed := c.sess.Get()
		select {
		case <-predCh:
		case <-changed:
			if c.conn.SessionID() != sessID {
				return nil, errLostCandidate
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.g.Closed():
			return nil, coord.ErrClosed
		}
	}
}

// leadership is held while its candidate znode exists in the session that created it (see
// coord.HoldLeadership for when it is given up).
type leadership struct {
	*coord.Held
	c    *Coordinator
	path string
}

// lead starts watching the leadership of candidate p, created in session sessID; heard is
// the send time of a request answered in that session. The session is judged as a
// registration's is (regSession).
func (c *Coordinator) lead(p string, sessID int64, heard time.Time) (*leadership, error) {
	l := &leadership{c: c, path: p}
	var err error
	l.Held, err = coord.HoldLeadership(coord.Candidacy{
		Name: p, Session: &regSession{c: c, id: sessID, heard: heard}, Timeout: c.timeout(),
		Log: c.log, Closed: c.g.Closed(), Follow: l.follow,
		// Resign deletes the candidate znode, which wakes the next candidate; in a new
		// session the old one expired, and the znode with it.
		Resign: func(ctx context.Context) error {
			if c.conn.SessionID() != sessID {
				return nil
			}
			err := callDelete(ctx, c, p, -1)
			if errors.Is(err, zk.ErrNoNode) {
				return nil
			}
			return wrap("resign", err)
		},
	}, c.g.Go)
	return l, err
}

// follow arms the candidate znode's one-shot watch, again after it fires and after every
// reconnect, until the znode is gone.
func (l *leadership) follow(ctx context.Context) string {
	var (
		nodeCh   <-chan zk.Event
		armedGen uint64
	)
	for ctx.Err() == nil {
		s, changed := l.c.sess.Get()
		if s.connected && (nodeCh == nil || s.gen != armedGen) {
			// Bounded, so that a call lost on a silent link is made again.
			actx, cancel := context.WithTimeout(ctx, coord.OverdueAfter(l.c.timeout()))
			ok, _, ch, err := callExistsW(actx, l.c, l.path)
			cancel()
			switch {
			case err == nil && !ok:
				return "candidate znode deleted"
			case err == nil:
				armedGen, nodeCh = s.gen, ch
			default:
				if !l.c.sleep(ctx, 100*time.Millisecond) {
					return ""
				}
				continue
			}
		}
		select {
		case <-changed:
		case <-nodeCh:
			nodeCh = nil
		case <-ctx.Done():
		}
	}
	return ""
}

// Leader returns the candidate that leads the named election.
func (c *Coordinator) Leader(ctx context.Context, election string) (string, error) {
	dir := c.electDir + "/" + election
	names, err := call(ctx, func() ([]string, error) { n, _, err := c.conn.Children(dir); return n, err })
	if err != nil {
		return "", wrap("leader", err)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !strings.Contains(n, "n_") || len(n) < 10 })
	if len(names) == 0 {
		return "", fmt.Errorf("leader of %s: %w", election, coord.ErrNotFound)
	}
	sort.Slice(names, func(i, j int) bool { return seq(names[i]) < seq(names[j]) })
	data, _, err := callGet(ctx, c, dir+"/"+names[0])
	if err != nil {
		return "", wrap("leader", err)
	}
	return string(data), nil
}
