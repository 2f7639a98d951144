package etcdcoord

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// leaseState is what a keeper knows about its lease.
type leaseState struct {
	// lastAck is the send time of the latest request the server answered for the lease (the
	// grant or a keepalive). The server renews a lease when a keepalive reaches it, which is
	// after it was sent, so the lease cannot expire before lastAck + ttl.
	lastAck time.Time
	pending time.Time // send time of the oldest keepalive not answered yet; zero if none
	lost    bool      // the lease expired, was revoked, or went unconfirmed for a TTL
}

// keeper is one lease kept alive by the coordinator, with the send time of its last
// confirmation. It is the etcd counterpart of a ZooKeeper session: entries attached to it
// vanish when it ends.
//
// The client library's KeepAlive is not used: it times a lease from the arrival of each
// answer and does not say which request an answer is for (it sends again every half second
// while one is overdue), so nothing it reports bounds the server's expiry. The keeper sends
// one keepalive at a time instead (KeepAliveOnce) and remembers when it sent it.
type keeper struct {
	c   *Coordinator
	id  clientv3.LeaseID
	ttl time.Duration // as granted by the server

	st       notify.Value[leaseState]
	gone     chan struct{} // closed when lost
	goneOnce sync.Once

	cancel     context.CancelFunc // stops the keepalive
	revokeOnce sync.Once
	revokeErr  error
}

// grant creates a lease of SessionTTL and keeps it alive until revoked, lost, or the
// coordinator closes.
func (c *Coordinator) grant(ctx context.Context) (*keeper, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	// Taken before the request: the server starts the lease later, so a timer from here
	// never outlives the lease.
	start := time.Now()
	resp, err := c.cli.Grant(ctx, int64(c.ttl/time.Second))
	if err != nil {
		return nil, wrap("grant lease", err)
	}
	k := &keeper{c: c, id: resp.ID, ttl: time.Duration(resp.TTL) * time.Second, gone: make(chan struct{})}
	k.st.Set(leaseState{lastAck: start})
	kctx, kcancel := context.WithCancel(context.Background())
	k.cancel = kcancel
	// In the set before the goroutine starts: once it has, Close revokes what is in the set.
	c.mu.Lock()
	c.leases[k] = struct{}{}
	c.mu.Unlock()
	if err := c.g.Go(func() { k.run(kctx) }); err != nil {
		rctx, rcancel := context.WithTimeout(context.Background(), k.ttl)
		defer rcancel()
		_ = k.revoke(rctx)
		return nil, fmt.Errorf("keep lease alive: %w", err)
	}
	return k, nil
}

// run renews the lease every coord.ProbeInterval(ttl), one keepalive at a time, until the lease is
// lost or revoked or the coordinator closes.
func (k *keeper) run(ctx context.Context) {
	ctx, cancel := k.c.bind(ctx, nil)
	defer cancel()
	timer := time.NewTimer(coord.ProbeInterval(k.ttl))
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
		sent := time.Now()
		k.st.Update(func(s leaseState) leaseState {
			if s.pending.IsZero() {
				s.pending = sent
			}
			return s
		})
		// A slow answer still counts, by its own send time, so an attempt is given until
		// the lease may be gone. (The library retries within it when the connection fails.)
		actx, acancel := context.WithDeadline(ctx, k.st.Load().lastAck.Add(k.ttl))
		_, err := k.c.cli.KeepAliveOnce(actx, k.id)
		acancel()
		switch {
		case err == nil:
			k.st.Update(func(s leaseState) leaseState {
				if sent.After(s.lastAck) {
					s.lastAck = sent
				}
				s.pending = time.Time{}
				return s
			})
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			k.c.log.Warn("lease expired", "lease", fmt.Sprintf("%x", int64(k.id)))
			k.lose()
			return
		case ctx.Err() != nil:
			return
		}
		if time.Since(k.st.Load().lastAck) >= k.ttl {
			// Unconfirmed for a whole TTL: the server may have expired it.
			k.lose()
			return
		}
		// The next one an interval after this one was sent; after a failure, not at once.
		next := time.Until(sent.Add(coord.ProbeInterval(k.ttl)))
		if err != nil {
			next = max(next, 100*time.Millisecond)
		}
		timer.Reset(max(0, next))
	}
}

func (k *keeper) lose() {
	k.goneOnce.Do(func() {
		k.st.Update(func(s leaseState) leaseState { s.lost = true; return s })
		close(k.gone)
	})
}

// revoke stops the keepalive and revokes the lease, deleting every key attached to it.
// Idempotent; a lease that already expired counts as revoked.
func (k *keeper) revoke(ctx context.Context) error {
	k.revokeOnce.Do(func() {
		k.cancel()
		k.lose()
		k.c.mu.Lock()
		delete(k.c.leases, k)
		k.c.mu.Unlock()
		_, err := k.c.cli.Revoke(ctx, k.id)
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			k.revokeErr = wrap("revoke lease", err)
		}
	})
	return k.revokeErr
}

// revokeLater revokes k in the background, giving up after one TTL when the lease has
// expired anyway.
func (c *Coordinator) revokeLater(k *keeper) {
	// Once the coordinator is closing, Go fails, and Close revokes what is left.
	_ = c.g.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), k.ttl)
		defer cancel()
		if err := k.revoke(ctx); err != nil {
			c.log.Debug("revoke lost lease", "lease", fmt.Sprintf("%x", int64(k.id)), "error", err)
		}
	})
}
