package etcdcoord

import (
	"context"
	"errors"
	"fmt"
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
		case <-c.g.Closed():
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
		case <-c.g.Closed():
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
	l := &leadership{c: c, key: e.Key(), rev: e.Rev()}
	var mu sync.Mutex // serialises the Resigns' use of e
	l.Held, err = coord.HoldLeadership(coord.Candidacy{
		Name: l.key, Session: k, Timeout: k.ttl, Ended: sess.Done(), Log: c.log, Closed: c.g.Closed(),
		Follow: func(ctx context.Context) string {
			defer sess.Orphan()
			return l.followKey(ctx, resp.Header.Revision+1)
		},
		// Resign deletes the candidate key, which wakes the next candidate, and revokes the
		// lease; after Close there is nothing left to do, Close revoked it.
		Resign: func(ctx context.Context) error {
			select {
			case <-c.g.Closed():
				return nil
			default:
			}
			mu.Lock()
			defer mu.Unlock()
			err := e.Resign(ctx)
			if rerr := k.revoke(ctx); err == nil {
				err = rerr
			}
			return wrap("resign", err)
		},
		// A lost leadership gives its lease up, so that a candidate key that may linger does
		// not hold up the next leader.
		Lost: func() { c.revokeLater(k) },
	}, c.g.Go)
	if err != nil {
		sess.Orphan()
		return nil, err
	}
	c.log.Info("elected", "election", pfx, "candidate", candidate, "key", l.key, "rev", l.rev)
	return l, nil
}

// leadership is held while its candidate key exists on its lease (see coord.HoldLeadership
// for when it is given up).
type leadership struct {
	*coord.Held
	c   *Coordinator
	key string
	rev int64 // the candidate key's create revision: the fence
}

// followKey watches the candidate key from rev until it is deleted or replaced, and says
// which, or returns "" when ctx ends.
func (l *leadership) followKey(ctx context.Context, rev int64) string {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		for wr := range l.c.cli.Watch(wctx, l.key, clientv3.WithRev(rev), clientv3.WithFilterPut()) {
			if wr.Err() != nil {
				break
			}
			if len(wr.Events) > 0 {
				cancel()
				return "candidate key deleted"
			}
			rev = wr.Header.Revision + 1
		}
		cancel()
		if ctx.Err() != nil {
			return ""
		}
		// The watch broke (compaction): look at the key itself, then watch from there.
		resp, err := l.c.cli.Get(ctx, l.key)
		if err == nil {
			if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != l.rev {
				return "candidate key replaced"
			}
			rev = resp.Header.Revision + 1
		}
		l.c.sleep(ctx, 100*time.Millisecond)
	}
	return ""
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
