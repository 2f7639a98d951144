package etcdcoord

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// hold keeps watch over a created entry until it is lost, withdrawn or the registration
// stops. It returns when the loop must register again (or check the entry again).
//
// The state follows the lease: Suspended as soon as the connection is down or a keepalive
// answer is overdue; Registered again when answers come back; Fenced once a whole TTL has
// passed since the last answer (the server may have expired the lease without our being
// able to hear it) or the keepalive ended. A fenced lease is dropped: the entry comes back
// under a new lease and a new epoch.
func (r *registration) hold(ctx context.Context, k *keeper, cr created) {
	// Creating a watch blocks while the connection is down, so the watches run on a
	// goroutine of their own and this loop stays free to keep time.
	wctx, cancel := context.WithCancel(ctx)
	ended := make(chan entryEnd, 1)
	var wg sync.WaitGroup
	wg.Go(func() { r.watchEntry(wctx, cr, ended) })
	defer func() {
		cancel()
		wg.Wait()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		ls, leaseChanged := k.st.Get()
		_, linkChanged := r.c.link.Get()
		since := time.Since(ls.lastAck)
		if ls.lost || since >= k.ttl {
			r.c.log.Warn("registration fenced", "node", r.m.ID, "epoch", cr.epoch,
				"lease_lost", ls.lost, "since_last_keepalive", since.Round(time.Millisecond))
			r.setState(coord.Fenced, 0)
			r.dropLease()
			return
		}
		suspended := since > k.overdue() || !r.c.linkReady()
		switch st := r.status.Load().State; {
		case suspended && st == coord.Registered:
			r.setState(coord.Suspended, cr.epoch)
		case !suspended && st == coord.Suspended:
			r.setState(coord.Registered, cr.epoch)
		}
		next := k.ttl - since
		if !suspended {
			next = min(next, k.overdue()-since)
		}
		timer.Reset(next + time.Millisecond)

		select {
		case <-leaseChanged:
		case <-linkChanged:
		case <-timer.C:
		case e := <-ended:
			if e == entryGone {
				r.c.log.Warn("registration entry is gone; registering again", "node", r.m.ID, "epoch", cr.epoch)
				r.setState(coord.Registering, 0)
				return
			}
			// A watch broke (compaction, cancellation): check the entry again through
			// create, which adopts an entry on this lease under its epoch.
			r.c.sleep(ctx, 100*time.Millisecond)
			return
		case reply := <-r.withdraw:
			if r.status.Load().Mark == nil {
				reply <- nil
				continue
			}
			if suspended {
				reply <- fmt.Errorf("withdraw: %w", coord.ErrUnavailable)
				continue
			}
			err := r.deleteOwn(ctx, cr.epoch, k.overdue())
			reply <- err
			if err == nil {
				r.setState(coord.Quarantined, 0)
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// entryEnd is why watchEntry stopped.
type entryEnd int

const (
	entryGone    entryEnd = iota // the entry was deleted or replaced
	entryRecheck                 // a watch broke; the entry must be looked at again
)

// watchEntry follows the entry and the member's mark from the revision create saw, keeping
// Status.Mark current, until the entry goes, a watch breaks (reported on ended) or ctx ends.
// Watches resume by themselves across reconnects from the last revision they saw.
func (r *registration) watchEntry(ctx context.Context, cr created, ended chan<- entryEnd) {
	memberW := r.c.cli.Watch(ctx, r.key, clientv3.WithRev(cr.rev+1))
	markW := r.c.cli.Watch(ctx, r.markKey, clientv3.WithRev(cr.rev+1))
	for {
		select {
		case wr, ok := <-memberW:
			if !ok || wr.Err() != nil {
				ended <- entryRecheck
				return
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE || ev.Kv.CreateRevision != cr.epoch {
					ended <- entryGone
					return
				}
			}
		case wr, ok := <-markW:
			if !ok || wr.Err() != nil {
				ended <- entryRecheck
				return
			}
			for _, ev := range wr.Events {
				r.applyMark(ev)
			}
		case <-ctx.Done():
			return
		}
	}
}

// applyMark records a change of the member's quarantine mark.
func (r *registration) applyMark(ev *clientv3.Event) {
	if ev.Type == mvccpb.DELETE {
		r.setMark(nil)
		return
	}
	q := decodeMark(r.m.ID, ev.Kv.Value)
	r.setMark(&q)
}

// deleteOwn deletes the entry if it is still the one created at epoch. It waits at most d,
// so that the caller's fence timer is not held up.
func (r *registration) deleteOwn(ctx context.Context, epoch int64, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, err := r.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(r.key), "=", epoch)).
		Then(clientv3.OpDelete(r.key)).
		Commit()
	return wrap("withdraw", err)
}

// waitMarkGone waits in Quarantined until the mark is released.
func (r *registration) waitMarkGone(ctx context.Context) {
	for ctx.Err() == nil {
		gctx, cancel := context.WithTimeout(ctx, r.c.cfg.DialTimeout)
		resp, err := r.c.cli.Get(gctx, r.markKey)
		cancel()
		if err != nil {
			r.c.sleep(ctx, 100*time.Millisecond)
			continue
		}
		if len(resp.Kvs) == 0 {
			r.setMark(nil)
			r.setState(coord.Registering, 0)
			return
		}
		q := decodeMark(r.m.ID, resp.Kvs[0].Value)
		r.setMark(&q)
		if r.followMark(ctx, resp.Header.Revision+1) {
			r.setState(coord.Registering, 0)
			return
		}
	}
}

// followMark watches the mark from rev and reports whether it was deleted; false means the
// watch broke or ctx ended.
func (r *registration) followMark(ctx context.Context, rev int64) bool {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := r.c.cli.Watch(wctx, r.markKey, clientv3.WithRev(rev))
	for {
		select {
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				r.c.sleep(ctx, 100*time.Millisecond)
				return false
			}
			for _, ev := range wr.Events {
				r.applyMark(ev)
				if ev.Type == mvccpb.DELETE {
					return true
				}
			}
		case reply := <-r.withdraw:
			reply <- nil // already withdrawn
		case <-ctx.Done():
			return false
		}
	}
}
