package etcdcoord

import (
	"context"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// Campaign runs coord.Campaign with one ballot per candidate: a key under <prefix>/election/<name>/
// on a lease of its own, keyed as concurrency.Election keys it (the lease id in hex), so that
// candidates of either kind share one election. concurrency.Election itself is not used: the
// recipe needs only a Put, a sorted Get and a Watch, and it has three quirks: its session runs
// a second keepalive on the lease; an abandoned Campaign resigns with its client's context,
// which waits for a ready connection; and Campaign returns once every earlier candidate is gone
// even if its own key went with its lease meanwhile.
func (c *Coordinator) Campaign(ctx context.Context, election, candidate string) (coord.Leadership, error) {
	return coord.Campaign(ctx, c.g, c.log, election, candidate, c.stand)
}

// ballot is a candidate key on lease k; SetQuarantine checks its create revision.
type ballot struct {
	c        *Coordinator
	k        *keeper
	pfx, key string
	rev      int64  // the candidate key's create revision: the fence
	watch    string // the key the last Line looked at last: the predecessor's, or this one
	from     int64  // the revision after the last Line's read: Wait watches from there
}

func (c *Coordinator) stand(ctx context.Context, election, value string) (*ballot, error) {
	k, err := c.grant(ctx)
	if err != nil {
		return nil, err
	}
	b := &ballot{c: c, k: k, pfx: c.electPfx + election + "/"}
	b.key = b.pfx + k.hex()
	pctx, cancel := k.bound(ctx)
	defer cancel()
	resp, err := c.cli.Put(pctx, b.key, value, clientv3.WithLease(k.id))
	if err != nil {
		c.revokeLater(k)
		return nil, wrap("campaign", err)
	}
	b.rev = resp.Header.Revision
	return b, nil
}

// Line reads the candidate keys by create revision; the candidate is lost with its lease.
func (b *ballot) Line(ctx context.Context) (int, error) {
	ctx, cancel := b.k.bound(ctx)
	defer cancel()
	resp, err := b.c.cli.Get(ctx, b.pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if b.k.p.Load().Lost {
		return -1, nil
	}
	if err != nil {
		return 0, wrap("campaign", err)
	}
	i := slices.IndexFunc(resp.Kvs, func(kv *mvccpb.KeyValue) bool { return string(kv.Key) == b.key })
	if i < 0 || resp.Kvs[i].CreateRevision != b.rev {
		return -1, nil
	}
	b.watch, b.from = b.key, resp.Header.Revision+1
	if i > 0 {
		b.watch = string(resp.Kvs[i-1].Key)
	}
	return i, nil
}

// Wait watches for the key's delete while the lease lasts; a watch that breaks (compaction)
// ends it too, and Line reads again.
func (b *ballot) Wait(ctx context.Context) {
	ctx, cancel := b.k.bound(ctx)
	defer cancel()
	for wr := range b.c.cli.Watch(ctx, b.watch, clientv3.WithRev(b.from), clientv3.WithFilterPut()) {
		if wr.Err() != nil || len(wr.Events) > 0 {
			return
		}
	}
}

// Candidacy holds the leadership on the lease, which Resign revokes.
func (b *ballot) Candidacy() coord.Candidacy {
	return coord.Candidacy{
		Name: b.key, Session: b.k, Timeout: b.k.ttl,
		// Revoking the lease deletes the key, waking the next candidate; after Close it is revoked.
		Resign: func(ctx context.Context) error {
			select {
			case <-b.c.g.Closed():
				return nil
			default:
				return wrap("resign", b.k.revoke(ctx))
			}
		},
		// Give the lease up, so that a candidate key that may linger does not hold up the next.
		Lost: func() { b.c.revokeLater(b.k) },
	}
}

// Withdraw revokes the lease, which deletes the candidate key, in the background: the link
// may be down, and the campaign's context may have ended.
func (b *ballot) Withdraw(context.Context) error {
	b.c.revokeLater(b.k)
	return nil
}

// Leader returns the value of the candidate key created first.
func (c *Coordinator) Leader(ctx context.Context, election string) (string, error) {
	return coord.Leader(ctx, election, func(ctx context.Context, election string) (string, bool, error) {
		resp, err := c.cli.Get(ctx, c.electPfx+election+"/", clientv3.WithFirstCreate()...)
		if err != nil || len(resp.Kvs) == 0 {
			return "", false, wrap("leader", err)
		}
		return string(resp.Kvs[0].Value), true, nil
	})
}
