package zkcoord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
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
			return c.lead(p, sessID, sent), nil
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
		case <-c.closed:
			return nil, coord.ErrClosed
		}
	}
}

// leadership is held while its candidate znode exists in the session that created it.
type leadership struct {
	c      *Coordinator
	path   string
	sessID int64
	done   chan struct{}
	once   sync.Once
	resign chan struct{}
	rOnce  sync.Once
}

func (l *leadership) Done() <-chan struct{} { return l.done }

func (l *leadership) lose(why string) {
	l.once.Do(func() {
		l.c.log.Warn("leadership lost", "candidate", l.path, "why", why)
		close(l.done)
	})
}

// Resign deletes the candidate znode, which wakes the next candidate.
func (l *leadership) Resign(ctx context.Context) error {
	l.rOnce.Do(func() { close(l.resign) })
	<-l.done
	if l.c.conn.SessionID() != l.sessID {
		return nil
	}
	err := callDelete(ctx, l.c, l.path, -1)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return wrap("resign", err)
}

// lead starts the goroutine that watches the leadership. Leadership is given up as soon as
// the ensemble has not answered for a third of the session timeout (when a registration
// would be Suspended, see coord.Liveness), or the connection has been reported lost for that
// long (Curator gives it up on suspension; CURATOR-460 shows why waiting longer lets two
// leaders overlap), when the candidate znode goes, or when the session changes. Writes are
// fenced regardless.
// heard is the send time of a request answered in session sessID.
func (c *Coordinator) lead(p string, sessID int64, heard time.Time) *leadership {
	l := &leadership{c: c, path: p, sessID: sessID, done: make(chan struct{}), resign: make(chan struct{})}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		var (
			nodeCh    <-chan zk.Event
			armedGen  uint64
			downSince time.Time
		)
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for {
			s, changed := c.sess.Get()
			_, heardChanged := c.heard.Get()
			if s.closed {
				l.lose("coordinator closed")
				return
			}
			now := time.Now()
			st := c.standing(now, sessID, heard)
			heard = st.heard
			if st.suspended || !now.Before(st.fenceAt) {
				l.lose("ZooKeeper not answering")
				return
			}
			next := st.next
			if s.connected {
				downSince = time.Time{}
			} else {
				if downSince.IsZero() {
					downSince = now
				}
				giveUp := downSince.Add(c.timeout() / 3)
				if !now.Before(giveUp) {
					l.lose("disconnected from ZooKeeper")
					return
				}
				next = earliest(next, giveUp)
			}
			timer.Reset(time.Until(next))
			if s.connected && c.conn.SessionID() != sessID {
				l.lose("session expired")
				return
			}
			if s.connected && (nodeCh == nil || s.gen != armedGen) {
				cctx, cancel := context.WithDeadline(context.Background(), next)
				ok, _, ch, err := callExistsW(cctx, c, p)
				cancel()
				switch {
				case err == nil && !ok:
					l.lose("candidate znode deleted")
					return
				case err == nil:
					armedGen, nodeCh = s.gen, ch
				default:
					// Look again shortly, or when the standing changes.
					timer.Reset(max(0, min(100*time.Millisecond, time.Until(next))))
				}
			}
			select {
			case <-changed:
			case <-heardChanged:
			case <-timer.C:
			case <-nodeCh:
				nodeCh = nil
			case <-l.resign:
				l.lose("resigned")
				return
			case <-c.closed:
				l.lose("coordinator closed")
				return
			}
		}
	}()
	return l
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
