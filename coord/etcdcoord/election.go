package etcdcoord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// errLostCandidate: the campaign's lease ended before it was elected.
var errLostCandidate = errors.New("candidate lease lost")

// Campaign runs etcd's election recipe (concurrency.Election) on a lease of its own: each
// candidate puts a key under <prefix>/election/<name>/ with its lease, the lowest create
// revision leads, and each other candidate waits only for the deletion of the candidate just
// before it. If the lease is lost while waiting, it campaigns again on a new one.
func (c *Coordinator) Campaign(ctx context.Context, election, candidate string) (coord.Leadership, error) {
	if err := coord.ValidateID(election); err != nil {
		return nil, fmt.Errorf("election name: %w", err)
	}
	pfx := c.electPfx + election
	for {
		select {
		case <-c.closed:
			return nil, coord.ErrClosed
		default:
		}
		k, err := c.grant(ctx)
		if err == nil {
			var l *leadership
			if l, err = c.campaign(ctx, k, pfx, candidate); err == nil {
				return l, nil
			}
			c.revokeLater(k) // in the background: the link may be down, and ctx may have ended
		}
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("campaign %s: %w", election, ctx.Err())
		case errors.Is(err, coord.ErrClosed):
			return nil, err
		case errors.Is(err, errLostCandidate):
			c.log.Warn("campaign: lease lost while waiting; campaigning again", "election", election, "candidate", candidate)
		default:
			c.log.Warn("campaign: retrying", "election", election, "candidate", candidate, "error", err)
			if !c.sleep(ctx, 100*time.Millisecond) {
				continue // the loop's checks report ctx or Close
			}
		}
	}
}

// campaign waits on lease k until elected, the lease is lost, ctx ends or the coordinator
// closes.
func (c *Coordinator) campaign(ctx context.Context, k *keeper, pfx, candidate string) (*leadership, error) {
	cctx, cancel := c.bind(ctx, k.gone)
	defer cancel()
	// When a campaign is abandoned, the recipe resigns with its client's own context, which
	// waits for a ready connection: a view of the client whose context ends with this
	// campaign keeps that from hanging on a cut link (the lease is revoked instead).
	view := clientv3.NewCtxClient(cctx, clientv3.WithZapLogger(c.cli.GetLogger()))
	view.KV, view.Lease, view.Watcher = c.cli.KV, c.cli.Lease, c.cli.Watcher
	sess, err := concurrency.NewSession(view, concurrency.WithLease(k.id), concurrency.WithContext(context.Background()))
	if err != nil {
		return nil, err
	}
	lost := func(err error) error {
		sess.Orphan()
		select {
		case <-k.gone:
			return errLostCandidate
		case <-c.closed:
			return coord.ErrClosed
		default:
			return err
		}
	}
	e := concurrency.NewElection(sess, pfx)
	if err := e.Campaign(cctx, candidate); err != nil {
		return nil, lost(err)
	}
	// The recipe returns once every earlier candidate is gone, even if our own key went
	// with our lease meanwhile: check that it is still there.
	resp, err := c.cli.Get(cctx, e.Key())
	if err != nil {
		return nil, lost(err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != e.Rev() || clientv3.LeaseID(resp.Kvs[0].Lease) != k.id {
		sess.Orphan()
		return nil, errLostCandidate
	}
	l := &leadership{c: c, e: e, sess: sess, k: k, key: e.Key(), rev: e.Rev(),
		done: make(chan struct{}), resign: make(chan struct{})}
	if err := c.spawn(func() { l.watch(resp.Header.Revision + 1) }); err != nil {
		sess.Orphan()
		return nil, err
	}
	c.log.Info("elected", "election", pfx, "candidate", candidate, "key", l.key, "rev", l.rev)
	return l, nil
}

// leadership is held while its candidate key exists on its lease.
type leadership struct {
	c    *Coordinator
	e    *concurrency.Election
	sess *concurrency.Session
	k    *keeper
	key  string
	rev  int64 // the candidate key's create revision: the fence

	done   chan struct{}
	once   sync.Once
	resign chan struct{}
	rOnce  sync.Once
	mu     sync.Mutex // serialises Resign's use of e
}

// Done is closed when leadership is lost or given up.
func (l *leadership) Done() <-chan struct{} { return l.done }

func (l *leadership) lose(why string) {
	l.once.Do(func() {
		lvl := slog.LevelWarn
		if why == "resigned" {
			lvl = slog.LevelInfo
		}
		l.c.log.Log(context.Background(), lvl, "leadership ended", "key", l.key, "why", why)
		close(l.done)
	})
}

// Resign deletes the candidate key, which wakes the next candidate, and revokes the lease.
func (l *leadership) Resign(ctx context.Context) error {
	l.rOnce.Do(func() { close(l.resign) })
	<-l.done
	select {
	case <-l.c.closed:
		return nil // Close revoked the lease
	default:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.e.Resign(ctx)
	if rerr := l.k.revoke(ctx); err == nil {
		err = rerr
	}
	return wrap("resign", err)
}

// watch follows the leadership until it is lost. Leadership is given up when the candidate
// key is deleted, the lease ends, the lease counts as suspended (a keepalive unanswered for a
// third of the TTL; see keeper.standing), or the connection is down for a third of the TTL
// (Curator gives up on suspension; CURATOR-460 shows why waiting longer lets two leaders
// overlap). Writes are fenced regardless.
func (l *leadership) watch(rev int64) {
	defer l.sess.Orphan()
	c, k := l.c, l.k
	// Creating a watch blocks while the connection is down: the key is watched on a
	// goroutine of its own, and this loop keeps time.
	ctx, cancel := c.bind(context.Background(), l.done)
	var wg sync.WaitGroup
	wg.Go(func() { l.followKey(ctx, rev) })
	defer func() {
		cancel()
		wg.Wait()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var downSince time.Time
	for {
		ls, leaseChanged := k.st.Get()
		_, linkChanged := c.link.Get()
		now := time.Now()
		overdue, fenceAt, next := k.standing(ls, now)
		switch {
		case ls.lost:
			l.lost("lease lost")
			return
		case overdue || !now.Before(fenceAt):
			l.lost("keepalive answers overdue")
			return
		}
		if c.linkReady() {
			downSince = time.Time{}
		} else if downSince.IsZero() {
			downSince = now
		}
		if !downSince.IsZero() {
			giveUp := downSince.Add(k.ttl / 3)
			if !now.Before(giveUp) {
				l.lost("disconnected from etcd")
				return
			}
			if giveUp.Before(next) {
				next = giveUp
			}
		}
		timer.Reset(time.Until(next))

		select {
		case <-leaseChanged:
		case <-linkChanged:
		case <-timer.C:
		case <-l.done: // followKey saw the key go
			return
		case <-l.sess.Done():
			l.lost("session ended")
			return
		case <-l.resign:
			l.lose("resigned")
			return
		case <-c.closed:
			l.lose("coordinator closed")
			return
		}
	}
}

// followKey watches the candidate key from rev until it is deleted or replaced (leadership
// is lost) or ctx ends.
func (l *leadership) followKey(ctx context.Context, rev int64) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		for wr := range l.c.cli.Watch(wctx, l.key, clientv3.WithRev(rev), clientv3.WithFilterPut()) {
			if wr.Err() != nil {
				break
			}
			if len(wr.Events) > 0 {
				cancel()
				l.lost("candidate key deleted")
				return
			}
			rev = wr.Header.Revision + 1
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		// The watch broke (compaction): look at the key itself, then watch from there.
		resp, err := l.c.cli.Get(ctx, l.key)
		if err == nil {
			if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != l.rev {
				l.lost("candidate key replaced")
				return
			}
			rev = resp.Header.Revision + 1
		}
		l.c.sleep(ctx, 100*time.Millisecond)
	}
}

// lost gives up leadership that was taken away, and the lease with it, so that a candidate
// key that may linger does not hold up the next leader.
func (l *leadership) lost(why string) {
	l.lose(why)
	l.c.revokeLater(l.k)
}

// Leader returns the value of the candidate that leads the named election.
func (c *Coordinator) Leader(ctx context.Context, election string) (string, error) {
	if err := coord.ValidateID(election); err != nil {
		return "", fmt.Errorf("election name: %w", err)
	}
	resp, err := c.cli.Get(ctx, c.electPfx+election+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", wrap("leader", err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("leader of %s: %w", election, coord.ErrNotFound)
	}
	return string(resp.Kvs[0].Value), nil
}
