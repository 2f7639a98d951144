package zkcoord

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// Campaign runs coord's election recipe (coord.Campaign) on ZooKeeper's: an ephemeral
// sequential candidate znode per candidate; the lowest sequence leads; each other candidate
// watches only its predecessor.
func (c *Coordinator) Campaign(ctx context.Context, election, candidate string) (coord.Leadership, error) {
	return coord.Campaign(ctx, c.g, c.log, election, candidate, c.stand)
}

// ballot is a candidate znode, ephemeral in session sess; a leadership is held while it
// exists (see coord.HoldLeadership for when it is given up), and SetQuarantine checks it.
type ballot struct {
	c         *Coordinator
	dir, path string
	sess      int64
	heard     time.Time // send time of the last Line's listing, answered in sess
	watch     string    // the entry the last Line looked at last: the predecessor, or this one
}

// stand creates a candidate znode in the election's directory, in the current session.
func (c *Coordinator) stand(ctx context.Context, election, value string) (*ballot, error) {
	dir := c.electDir + "/" + election
	if err := c.ensurePath(ctx, dir); err != nil {
		return nil, wrap("campaign", err)
	}
	if _, err := c.waitSession(ctx); err != nil {
		return nil, err
	}
	sess := c.conn.SessionID()
	p, err := call(ctx, func() (string, error) {
		return c.conn.CreateProtectedEphemeralSequential(dir+"/n_", []byte(value), c.acl)
	})
	if err != nil {
		return nil, wrap("campaign", err)
	}
	return &ballot{c: c, dir: dir, path: p, sess: sess}, nil
}

// Line lists the candidates by sequence; the candidate is lost with its session.
func (b *ballot) Line(ctx context.Context) (int, error) {
	if b.c.conn.SessionID() != b.sess {
		return -1, nil
	}
	sent := time.Now()
	names, err := b.c.candidates(ctx, b.dir)
	if err != nil {
		return 0, err
	}
	i := slices.Index(names, base(b.path))
	b.heard, b.watch = sent, base(b.path)
	if i > 0 {
		b.watch = names[i-1]
	}
	return i, nil
}

// Wait arms the entry's one-shot watch. A session event (a disconnect, a reconnect) ends
// the wait, even while the call is on its way: the next Line must see whether the session
// was lost, and a call lost on a silent link is made again.
func (b *ballot) Wait(ctx context.Context) {
	_, changed := b.c.sess.Get()
	ctx, cancel := notify.CancelOn(ctx, changed, nil)
	defer cancel()
	ok, _, ch, err := callExistsW(ctx, b.c, b.dir+"/"+b.watch)
	if err != nil || !ok {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// Candidacy judges the session as a registration's is (regSession), heard at the send time
// of the listing that found the candidate lowest.
func (b *ballot) Candidacy() coord.Candidacy {
	return coord.Candidacy{
		Name: b.path, Session: &regSession{c: b.c, id: b.sess, heard: b.heard}, Timeout: b.c.timeout(),
		Resign: b.Withdraw,
	}
}

// Withdraw deletes the candidate znode, which wakes the next candidate; in a new session the
// old one expired, and the znode with it.
func (b *ballot) Withdraw(ctx context.Context) error {
	if b.c.conn.SessionID() != b.sess {
		return nil
	}
	err := callDelete(ctx, b.c, b.path, -1)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return wrap("resign", err)
}

// candidates lists the candidate znodes in dir by sequence (the suffix ZooKeeper appended).
func (c *Coordinator) candidates(ctx context.Context, dir string) ([]string, error) {
	names, err := call(ctx, func() ([]string, error) { n, _, err := c.conn.Children(dir); return n, err })
	names = slices.DeleteFunc(names, func(n string) bool { return !strings.Contains(n, "n_") || len(n) < 10 })
	sort.Slice(names, func(i, j int) bool { return names[i][len(names[i])-10:] < names[j][len(names[j])-10:] })
	return names, err
}

// Leader returns the candidate that leads the named election.
func (c *Coordinator) Leader(ctx context.Context, election string) (string, error) {
	return coord.Leader(ctx, election, func(ctx context.Context, election string) (string, bool, error) {
		names, err := c.candidates(ctx, c.electDir+"/"+election)
		if err != nil || len(names) == 0 {
			return "", false, wrap("leader", err)
		}
		data, _, err := callGet(ctx, c, c.electDir+"/"+election+"/"+names[0])
		return string(data), true, wrap("leader", err)
	})
}
