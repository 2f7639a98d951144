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
	lastAck time.Time // when the server last confirmed the lease (grant or keepalive answer)
	lost    bool      // the keepalive ended: the lease expired, was revoked, or went unconfirmed for a TTL
}

// keeper is one lease kept alive by the client, with the time of its last confirmation. It
// is the etcd counterpart of a ZooKeeper session: entries attached to it vanish when it
// ends.
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
	acks, err := c.cli.KeepAlive(kctx, resp.ID)
	if err == nil {
		c.mu.Lock()
		if c.isClosed {
			err = coord.ErrClosed
		} else {
			c.leases[k] = struct{}{}
			c.wg.Go(func() { k.run(acks) })
		}
		c.mu.Unlock()
	}
	if err != nil {
		rctx, rcancel := context.WithTimeout(context.Background(), k.ttl)
		defer rcancel()
		_ = k.revoke(rctx)
		return nil, fmt.Errorf("keep lease alive: %w", err)
	}
	return k, nil
}

// run records every keepalive answer until the keepalive ends or the coordinator closes.
func (k *keeper) run(acks <-chan *clientv3.LeaseKeepAliveResponse) {
	for {
		select {
		case _, ok := <-acks:
			if !ok {
				k.lose()
				return
			}
			now := time.Now()
			k.st.Update(func(s leaseState) leaseState { s.lastAck = now; return s })
		case <-k.c.closed:
			return
		}
	}
}

func (k *keeper) lose() {
	k.goneOnce.Do(func() {
		k.st.Update(func(s leaseState) leaseState { s.lost = true; return s })
		close(k.gone)
	})
}

// overdue is how long without a keepalive answer counts as "not getting through". The
// client asks every TTL/3, on a send loop that ticks every half second, so an answer can
// come TTL/3+500ms after the last one on a healthy link; half a TTL plus that tick leaves a
// sixth of the TTL for a busy machine and still gives up well before the lease expires.
func (k *keeper) overdue() time.Duration {
	return k.ttl/2 + 500*time.Millisecond
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed {
		return // Close revokes what is left
	}
	c.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), k.ttl)
		defer cancel()
		if err := k.revoke(ctx); err != nil {
			c.log.Debug("revoke lost lease", "lease", fmt.Sprintf("%x", int64(k.id)), "error", err)
		}
	})
}
