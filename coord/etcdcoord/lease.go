package etcdcoord

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// keeper is one lease kept alive by the coordinator: the etcd counterpart of a ZooKeeper
// session. The library's KeepAlive is not used: it times a lease from each answer's arrival
// and does not say which request an answer is for (it resends every half second while one is
// overdue), so nothing it reports bounds the server's expiry. The keeper's coord.Prober sends
// one KeepAliveOnce at a time and remembers its send time, which coord.State's rule needs.
type keeper struct {
	c   *Coordinator
	id  clientv3.LeaseID
	ttl time.Duration // as granted by the server

	// p sends the keepalives; Heard starts at the grant's send time. Lost: the lease expired,
	// was revoked, or went unconfirmed for a TTL.
	p *coord.Prober

	revoking  atomic.Bool   // set by the first revoke
	revoked   chan struct{} // closed when the first revoke has its outcome, revokeErr
	revokeErr error
}

// hex is the lease id as etcd's tools print it, and as concurrency.Election keys a candidate.
func (k *keeper) hex() string { return fmt.Sprintf("%x", int64(k.id)) }

// grant creates a lease of SessionTTL and keeps it alive until revoked, lost, or Close.
func (c *Coordinator) grant(ctx context.Context) (*keeper, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	start := time.Now() // before the lease starts: a timer from here never outlives it
	resp, err := c.cli.Grant(ctx, int64(c.ttl/time.Second))
	if err != nil {
		return nil, wrap("grant lease", err)
	}
	k := &keeper{c: c, id: resp.ID, ttl: time.Duration(resp.TTL) * time.Second, revoked: make(chan struct{})}
	k.p = coord.NewProber(start, func() time.Duration { return k.ttl }, k.keepAlive)
	// In the set before the goroutine starts: once it has, Close revokes what is in the set.
	c.mu.Lock()
	c.leases[k] = struct{}{}
	c.mu.Unlock()
	if err := c.g.Go(func() { k.p.Run(context.Background(), c.g.Closed(), coord.ProbeInterval(k.ttl)) }); err != nil {
		_ = k.revokeWithinTTL()
		return nil, fmt.Errorf("keep lease alive: %w", err)
	}
	return k, nil
}

// bound returns ctx, ended also when the lease is lost or on Close: no call outlives its lease.
func (k *keeper) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return notify.CancelOn(ctx, k.c.g.Closed(), k.p.Lost())
}

// keepAlive is the prober's probe. A slow answer still counts, by its send time, so it is given
// until the lease may be gone (the library retries within that when the connection fails).
func (k *keeper) keepAlive(ctx context.Context) (session int64, counts bool) {
	actx, acancel := context.WithDeadline(ctx, k.p.Load().Heard.Add(k.ttl))
	_, err := k.c.cli.KeepAliveOnce(actx, k.id)
	acancel()
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		k.c.log.Warn("lease expired", "lease", k.hex())
		k.p.Lose()
	case ctx.Err() != nil: // revoked, lost or closing: the prober stops
	case time.Since(k.p.Load().Heard) >= k.ttl: // unconfirmed for a TTL: the server may have expired it
		k.p.Lose()
	default: // after a failure, not the next one at once
		notify.Sleep(ctx, 100*time.Millisecond, nil)
	}
	return 0, false
}

// Standing judges the lease by its keepalives and the connection (Down). Unlike a ZooKeeper
// session, the lease is renewed by keepalives only, so the create is no evidence of it.
func (k *keeper) Standing(now time.Time) coord.Standing {
	l, leaseChanged := k.p.Get()
	_, linkChanged := k.c.linkGen.Get()
	out := l.Standing(now, k.ttl)
	out.Down = !k.c.linkReady()
	out.Changed = [2]<-chan struct{}{leaseChanged, linkChanged}
	return out
}

// revoke stops the keepalive and revokes the lease with its keys; an expired lease counts as
// revoked. A call made while an earlier one is under way (a background revoke on a cut link,
// say) waits for its outcome only as long as its own ctx lasts.
func (k *keeper) revoke(ctx context.Context) error {
	if k.revoking.Swap(true) {
		select {
		case <-k.revoked:
			return k.revokeErr
		case <-ctx.Done():
			return wrap("revoke lease", ctx.Err())
		}
	}
	k.p.Lose()
	k.c.mu.Lock()
	delete(k.c.leases, k)
	k.c.mu.Unlock()
	if _, err := k.c.cli.Revoke(ctx, k.id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		k.revokeErr = wrap("revoke lease", err)
	}
	close(k.revoked)
	return k.revokeErr
}

// revokeWithinTTL revokes k, giving up after one TTL: by then the lease has expired anyway.
func (k *keeper) revokeWithinTTL() error {
	ctx, cancel := context.WithTimeout(context.Background(), k.ttl)
	defer cancel()
	return k.revoke(ctx)
}

// revokeLater revokes k in the background; once Close began, Go fails and Close revokes it.
func (c *Coordinator) revokeLater(k *keeper) {
	_ = c.g.Go(func() {
		if err := k.revokeWithinTTL(); err != nil {
			c.log.Debug("revoke lost lease", "lease", k.hex(), "error", err)
		}
	})
}
