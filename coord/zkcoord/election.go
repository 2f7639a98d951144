package zkcoord

import (
	"context"
	"crypto/rand"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// Campaign runs coord.Campaign on ephemeral sequential candidate znodes: the lowest leads.
func (c *Coordinator) Campaign(ctx context.Context, election, candidate string) (coord.Leadership, error) {
	return coord.Campaign(ctx, c.g, c.log, election, candidate, c.stand)
}

// ballot is a candidate znode, ephemeral in session sess: a leadership is held while it
// exists (coord.HoldLeadership says till when), and SetQuarantine's fence checks it.
type ballot struct {
	c         *Coordinator
	dir, path string
	tag       string // the prefix of the znode's name, unique to this ballot (see stand)
	sess      int64
	dropOnce  sync.Once // one background delete serves a taken leadership and a failed Withdraw
	heard     time.Time // send time of the last Line's listing, answered in sess
	watch     string    // the entry the last Line looked at last: the predecessor, or this one
}

// stand creates a candidate znode in the current session. A create can be applied unbeknown
// to its caller (ctx ended; the answer lost with the connection), and a candidate nobody waits
// for would lead as long as its session lives. So, as in ZooKeeper's "protected" recipe, its
// name starts with a tag unique to the attempt, by which, if no ballot comes of it, the
// attempt's znodes are deleted in the background.
func (c *Coordinator) stand(ctx context.Context, election, value string) (*ballot, error) {
	dir := c.electDir + "/" + election
	if err := c.ensurePath(ctx, dir); err != nil {
		return nil, wrap("campaign", err)
	}
	if _, err := c.waitSession(ctx); err != nil {
		return nil, err
	}
	sess := c.conn.SessionID()
	tag := "_c_" + rand.Text() + "-"
	answered := make(chan struct{}) // closed once the create has its outcome, ctx or not
	p, err := call(ctx, func() (string, error) {
		defer close(answered)
		return c.conn.Create(dir+"/"+tag+"n_", []byte(value), zk.FlagEphemeralSequential, c.acl)
	})
	if err == nil && c.conn.SessionID() == sess {
		return &ballot{c: c, dir: dir, path: p, tag: tag, sess: sess}, nil
	}
	_ = c.g.Go(func() {
		select {
		case <-answered:
			c.dropCandidate(dir, tag)
		case <-c.g.Closed(): // every znode of the session is gone with it
		}
	})
	if err != nil {
		return nil, wrap("campaign", err) // also when ctx ended first: coord.Campaign then reports ctx's error
	}
	// Made in the old session (gone with it) or the new one: not one of the ballot's session.
	return nil, fmt.Errorf("campaign: %w: the session changed while the candidate was made", coord.ErrUnavailable)
}

// Line implements coord.Ballot; the candidate is lost with its session.
func (b *ballot) Line(ctx context.Context) (int, error) {
	if b.c.conn.SessionID() != b.sess {
		return -1, nil
	}
	sent := time.Now()
	names, err := b.c.candidates(ctx, b.dir)
	if err != nil {
		return 0, err
	}
	if b.c.conn.SessionID() != b.sess {
		return -1, nil // answered in a new session, which says nothing of the candidate's
	}
	i := slices.Index(names, path.Base(b.path))
	b.heard, b.watch = sent, path.Base(b.path)
	if i > 0 {
		b.watch = names[i-1]
	}
	return i, nil
}

// Wait arms a one-shot watch. A session event ends the wait even mid-call: the next Line
// must see if the session was lost, and a call lost on a silent link is made again.
func (b *ballot) Wait(ctx context.Context) {
	_, changed := b.c.sess.Get()
	if b.c.conn.SessionID() != b.sess {
		return // a session change between Line and here: the next Line says it is lost
	}
	ctx, cancel := notify.CancelOn(ctx, changed, nil)
	defer cancel()
	ok, _, ch, err := call3(ctx, b.c.conn.ExistsW, b.dir+"/"+b.watch)
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
		// A leadership given up on a link down for a third of the timeout may keep its
		// session: its znode, still the lowest, would hold every candidate off.
		Lost: b.dropLater,
	}
}

// Withdraw deletes the candidate znode (in a new session it expired with the old one), or on
// failure keeps at it in the background: a live session's unheld candidate blocks the election.
func (b *ballot) Withdraw(ctx context.Context) error {
	if b.c.conn.SessionID() != b.sess {
		return nil
	}
	if err := b.c.deleteOwned(ctx, b.path); err != nil {
		b.dropLater()
		return fmt.Errorf("resign: %w", err)
	}
	return nil
}

func (b *ballot) dropLater() {
	b.dropOnce.Do(func() { _ = b.c.g.Go(func() { b.c.dropCandidate(b.dir, b.tag) }) })
}

// dropCandidate deletes one attempt's candidate znodes (see stand), backing off up to T
// between failures, until the coordinator closes (which ends the session and its znodes).
func (c *Coordinator) dropCandidate(dir, tag string) {
	ctx, cancel := notify.CancelOn(context.Background(), c.g.Closed(), nil)
	defer cancel()
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, c.timeout()) {
		if _, err := c.waitSession(ctx); err != nil {
			return
		}
		dctx, cancelD := c.bounded(ctx)
		err := c.deleteTagged(dctx, dir, tag)
		cancelD()
		if err == nil {
			return
		}
		c.log.Warn("delete candidate znode; trying again", "dir", dir, "tag", tag, "in", pause, "error", err)
		if !notify.Sleep(ctx, pause, nil) {
			return
		}
	}
}

// deleteTagged deletes the current session's znodes in dir whose names start with tag.
func (c *Coordinator) deleteTagged(ctx context.Context, dir, tag string) error {
	names, _, err := call2(ctx, c.conn.Children, dir)
	if err != nil {
		return wrap("list "+dir, err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, tag) {
			if err := c.deleteOwned(ctx, dir+"/"+n); err != nil {
				return err
			}
		}
	}
	return nil
}

// candidates lists the candidate znodes in dir by sequence (the suffix ZooKeeper appended).
func (c *Coordinator) candidates(ctx context.Context, dir string) ([]string, error) {
	names, _, err := call2(ctx, c.conn.Children, dir)
	names = slices.DeleteFunc(names, func(n string) bool { return !strings.Contains(n, "n_") || len(n) < 10 })
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(a[len(a)-10:], b[len(b)-10:]) })
	return names, err
}

// Leader implements coord.Elections.
func (c *Coordinator) Leader(ctx context.Context, election string) (string, error) {
	return coord.Leader(ctx, election, func(ctx context.Context, election string) (string, bool, error) {
		names, err := c.candidates(ctx, c.electDir+"/"+election)
		if err != nil || len(names) == 0 {
			return "", false, wrap("leader", err)
		}
		data, _, err := call2(ctx, c.conn.Get, c.electDir+"/"+election+"/"+names[0])
		return string(data), true, wrap("leader", err)
	})
}
