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
// stops. It returns when the loop must register again.
//
// The state follows the lease (see keeper): Suspended as soon as the connection is down or a
// keepalive has gone unanswered for a third of the TTL (or nothing was answered for half of
// it); Registered again when answers come back; Fenced at the send time of the latest
// answered keepalive plus coord.FenceAfter(TTL), before the server can have expired the
// lease, or at once when the keepalive ends (the lease expired or was revoked). A fenced
// lease is dropped: the entry comes back under a new lease and a new epoch.
func (r *registration) hold(ctx context.Context, k *keeper, cr created) {
	// Creating a watch blocks while the connection is down, so the watches run on a
	// goroutine of their own and this loop stays free to keep time.
	wctx, cancel := context.WithCancel(ctx)
	gone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { r.watchEntry(wctx, k, cr, gone) })
	defer func() {
		cancel()
		wg.Wait()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		ls, leaseChanged := k.st.Get()
		_, linkChanged := r.c.link.Get()
		now := time.Now()
		overdue, fenceAt, next := k.standing(ls, now)
		if ls.lost || !now.Before(fenceAt) {
			r.c.log.Warn("registration fenced", "node", r.m.ID, "epoch", cr.epoch,
				"lease_lost", ls.lost, "since_last_answered_send", now.Sub(ls.lastAck).Round(time.Millisecond))
			r.setState(coord.Fenced, 0)
			r.dropLease()
			return
		}
		suspended := overdue || !r.c.linkReady()
		switch st := r.status.Load().State; {
		case suspended && st == coord.Registered:
			r.setState(coord.Suspended, cr.epoch)
		case !suspended && st == coord.Suspended:
			r.setState(coord.Registered, cr.epoch)
		}
		timer.Reset(time.Until(next))

		select {
		case <-leaseChanged:
		case <-linkChanged:
		case <-timer.C:
		case <-gone:
			r.c.log.Warn("registration entry is gone; registering again", "node", r.m.ID, "epoch", cr.epoch)
			r.setState(coord.Registering, 0)
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
			err := r.deleteOwn(ctx, cr.epoch, time.Until(next))
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

// watchEntry follows the entry and the member's mark from the revision create saw, keeping
// Status.Mark current, until the entry is deleted or replaced (it closes gone) or ctx ends.
// Watches resume by themselves across reconnects from the last revision they saw; one that
// breaks (compaction, cancellation) is replaced here, after a look at the entry and the mark,
// so that hold never has to leave its timekeeping to check the entry again.
func (r *registration) watchEntry(ctx context.Context, k *keeper, cr created, gone chan<- struct{}) {
	rev := cr.rev + 1
	for ctx.Err() == nil {
		if r.followEntry(ctx, cr, rev) {
			close(gone)
			return
		}
		for ctx.Err() == nil {
			resp, err := r.c.cli.Txn(ctx).Then(clientv3.OpGet(r.key), clientv3.OpGet(r.markKey)).Commit()
			if err != nil {
				r.c.sleep(ctx, 100*time.Millisecond)
				continue
			}
			kvs := resp.Responses[0].GetResponseRange().GetKvs()
			if len(kvs) == 0 || kvs[0].CreateRevision != cr.epoch || clientv3.LeaseID(kvs[0].Lease) != k.id {
				close(gone)
				return
			}
			if mk := resp.Responses[1].GetResponseRange().GetKvs(); len(mk) > 0 {
				q := coord.ParseQuarantine(r.m.ID, mk[0].Value)
				r.setMark(&q)
			} else {
				r.setMark(nil)
			}
			rev = resp.Header.Revision + 1
			break
		}
	}
}

// followEntry watches the entry and the mark from rev. It reports true when the entry was
// deleted or replaced, false when a watch broke or ctx ended.
func (r *registration) followEntry(ctx context.Context, cr created, rev int64) bool {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	memberW := r.c.cli.Watch(ctx, r.key, clientv3.WithRev(rev))
	markW := r.c.cli.Watch(ctx, r.markKey, clientv3.WithRev(rev))
	for {
		select {
		case wr, ok := <-memberW:
			if !ok || wr.Err() != nil {
				return false
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE || ev.Kv.CreateRevision != cr.epoch {
					return true
				}
			}
		case wr, ok := <-markW:
			if !ok || wr.Err() != nil {
				return false
			}
			for _, ev := range wr.Events {
				r.applyMark(ev)
			}
		case <-ctx.Done():
			return false
		}
	}
}

// applyMark records a change of the member's quarantine mark.
func (r *registration) applyMark(ev *clientv3.Event) {
	if ev.Type == mvccpb.DELETE {
		r.setMark(nil)
		return
	}
	q := coord.ParseQuarantine(r.m.ID, ev.Kv.Value)
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
		q := coord.ParseQuarantine(r.m.ID, resp.Kvs[0].Value)
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
