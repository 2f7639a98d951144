package etcdcoord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

var (
	// errMarked: the registration attempt failed because a quarantine mark stands.
	errMarked = errors.New("quarantine mark stands")
	// errAgain: the entry changed under the attempt (it vanished, or a stale one of ours
	// was just deleted); try again at once.
	errAgain = errors.New("entry changed; trying again")
)

// Register creates <prefix>/nodes/<id> on a lease of its own and keeps it: see
// coord.Coordinator.
func (c *Coordinator) Register(ctx context.Context, m coord.Member) (coord.Registration, error) {
	if err := coord.ValidateID(m.ID); err != nil {
		return nil, err
	}
	m.Epoch = 0
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode member: %w", err)
	}
	r := &registration{
		c:        c,
		m:        m,
		data:     string(data),
		key:      c.nodesPfx + m.ID,
		markKey:  c.quarPfx + m.ID,
		withdraw: make(chan chan error),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	r.status.Set(coord.Status{State: coord.Registering})
	first := make(chan error, 1)
	if err := c.spawn(func() {
		defer close(r.done)
		r.run(first)
	}); err != nil {
		return nil, err
	}
	select {
	case err := <-first:
		if err != nil {
			r.abandon()
			return nil, err
		}
		return r, nil
	case <-ctx.Done():
		r.abandon()
		return nil, fmt.Errorf("register %s: %w", m.ID, ctx.Err())
	}
}

// registration is one member's entry. Its run goroutine owns lease and the entry; other
// methods talk to it through channels, or read lease once done is closed.
type registration struct {
	c            *Coordinator
	m            coord.Member
	data         string
	key, markKey string

	status   notify.Value[coord.Status]
	withdraw chan chan error
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	lease *keeper // owned by run; read by others only after done
}

// Status returns the current status and a channel closed at the next change.
func (r *registration) Status() (coord.Status, <-chan struct{}) { return r.status.Get() }

func (r *registration) setState(st coord.State, epoch int64) {
	r.status.Update(func(s coord.Status) coord.Status {
		if s.State != st || s.Epoch != epoch {
			r.c.log.Info("registration", "node", r.m.ID, "state", st.String(), "epoch", epoch)
		}
		if s.State != st || s.Since.IsZero() {
			s.Since = time.Now()
		}
		s.State, s.Epoch = st, epoch
		return s
	})
}

func (r *registration) setMark(q *coord.Quarantine) {
	r.status.Update(func(s coord.Status) coord.Status { s.Mark = q; return s })
}

// Withdraw deletes the entry while a quarantine mark stands.
func (r *registration) Withdraw(ctx context.Context) error {
	if r.status.Load().State == coord.Quarantined {
		return nil // already withdrawn
	}
	reply := make(chan error, 1)
	select {
	case r.withdraw <- reply:
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Deregister revokes the registration's lease, which deletes the entry at once, and stops
// the registration. Idempotent.
func (r *registration) Deregister(ctx context.Context) error {
	r.stopOnce.Do(func() { close(r.stop) })
	select {
	case <-r.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := r.release(ctx)
	r.setState(coord.Closed, 0)
	if err != nil {
		return fmt.Errorf("deregister %s: %w", r.m.ID, err)
	}
	return nil
}

// abandon stops a registration whose Register failed and gives up its lease.
func (r *registration) abandon() {
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
	ctx, cancel := context.WithTimeout(context.Background(), r.c.ttl)
	defer cancel()
	_ = r.release(ctx)
}

// release revokes the lease once run has returned. After Close there is nothing left to do:
// Close revoked every lease.
func (r *registration) release(ctx context.Context) error {
	select {
	case <-r.c.closed:
		return nil
	default:
	}
	if r.lease == nil {
		return nil
	}
	return r.lease.revoke(ctx)
}

// run is the registration's loop: register, hold, and register again after every loss.
func (r *registration) run(first chan<- error) {
	ctx, cancel := r.c.bind(context.Background(), r.stop)
	defer cancel()
	defer r.setState(coord.Closed, 0)
	settled := false
	settle := func(err error) {
		if !settled {
			settled = true
			first <- err
		}
	}
	backoff := 50 * time.Millisecond
	duplicateSince := time.Time{}
	for ctx.Err() == nil {
		k, err := r.currentLease(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.c.log.Warn("register: no lease; retrying", "node", r.m.ID, "error", err)
				r.c.sleep(ctx, backoff)
				backoff = min(backoff*2, time.Second)
			}
			continue
		}
		cr, err := r.create(ctx, k)
		switch {
		case err == nil:
			backoff = 50 * time.Millisecond
			duplicateSince = time.Time{}
			r.setMark(cr.mark)
			r.setState(coord.Registered, cr.epoch)
			settle(nil)
			r.hold(ctx, k, cr)
		case errors.Is(err, errMarked):
			r.setState(coord.Quarantined, 0)
			settle(nil)
			r.waitMarkGone(ctx)
		case errors.Is(err, coord.ErrDuplicate):
			// A different live process holds the id. It may be a crashed predecessor whose
			// lease has not expired yet: wait up to a TTL and a half for its entry to go
			// before calling it a duplicate.
			if duplicateSince.IsZero() {
				duplicateSince = time.Now()
			}
			if !settled && time.Since(duplicateSince) > r.c.ttl*3/2 {
				settle(fmt.Errorf("register %s: %w", r.m.ID, err))
				return
			}
			if settled {
				r.setState(coord.Fenced, 0)
				r.c.log.Error("node id held by another live process; waiting for it to go", "node", r.m.ID)
			}
			r.waitGone(ctx, 2*time.Second)
		case errors.Is(err, errAgain):
		default:
			if ctx.Err() != nil {
				break
			}
			r.c.log.Warn("register: retrying", "node", r.m.ID, "error", err)
			if !r.c.sleep(ctx, backoff) {
				break
			}
			backoff = min(backoff*2, time.Second)
		}
	}
	settle(coord.ErrClosed)
}

// currentLease returns the registration's lease, granting a new one if it has none or its
// lease was lost.
func (r *registration) currentLease(ctx context.Context) (*keeper, error) {
	if r.lease != nil && !r.lease.st.Load().lost {
		return r.lease, nil
	}
	if r.lease != nil {
		r.c.revokeLater(r.lease)
		r.lease = nil
	}
	k, err := r.c.grant(ctx)
	if err != nil {
		return nil, err
	}
	r.lease = k
	return k, nil
}

// dropLease gives up the current lease after a fence: the entry comes back under a new
// lease and a new epoch, never the one that was fenced.
func (r *registration) dropLease() {
	if r.lease != nil {
		r.c.revokeLater(r.lease)
		r.lease = nil
	}
}

// created is the outcome of a successful create: the entry's epoch, the revision at which
// it was seen, and the member's mark if one stood at that revision.
type created struct {
	epoch, rev int64
	mark       *coord.Quarantine
}

// create registers the entry on lease k unless a quarantine mark stands, in one
// transaction that requires both the mark and the entry to be absent.
func (r *registration) create(ctx context.Context, k *keeper) (created, error) {
	ctx, cancel := context.WithTimeout(ctx, r.c.cfg.DialTimeout)
	defer cancel()
	resp, err := r.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(r.markKey), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(r.key), "=", 0)).
		Then(clientv3.OpPut(r.key, r.data, clientv3.WithLease(k.id))).
		Else(clientv3.OpGet(r.markKey), clientv3.OpGet(r.key)).
		Commit()
	if err != nil {
		return created{}, wrap("register", err)
	}
	rev := resp.Header.Revision
	if resp.Succeeded {
		return created{epoch: rev, rev: rev}, nil
	}
	var mark *coord.Quarantine
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		q := coord.ParseQuarantine(r.m.ID, kvs[0].Value)
		mark = &q
	}
	kvs := resp.Responses[1].GetResponseRange().GetKvs()
	if len(kvs) > 0 && clientv3.LeaseID(kvs[0].Lease) == k.id {
		// Ours, on this lease: an earlier attempt did create it (its answer was lost), or
		// the loop is checking the entry again after its watch broke.
		return created{epoch: kvs[0].CreateRevision, rev: rev, mark: mark}, nil
	}
	if mark != nil {
		r.setMark(mark)
		return created{}, errMarked
	}
	if len(kvs) == 0 {
		return created{}, errAgain
	}
	kv := kvs[0]
	var other coord.Member
	_ = json.Unmarshal(kv.Value, &other)
	if other.Instance == r.m.Instance {
		// Left on an older lease of this process (fenced, not yet expired): delete it, only
		// that version, so the next attempt can create it under the current lease.
		r.c.log.Info("deleting own stale entry from an older lease", "node", r.m.ID,
			"lease", fmt.Sprintf("%x", kv.Lease), "current", fmt.Sprintf("%x", int64(k.id)))
		_, err := r.c.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(r.key), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(r.key)).
			Commit()
		if err != nil {
			return created{}, wrap("delete stale entry", err)
		}
		return created{}, errAgain
	}
	return created{}, fmt.Errorf("%w (instance %s, lease %x, started %s)", coord.ErrDuplicate,
		other.Instance, kv.Lease, other.StartedAt.Format(time.RFC3339))
}

// waitGone waits until the entry is deleted, at most d.
func (r *registration) waitGone(ctx context.Context, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	resp, err := r.c.cli.Get(ctx, r.key)
	if err != nil || len(resp.Kvs) == 0 {
		return
	}
	for wr := range r.c.cli.Watch(ctx, r.key, clientv3.WithRev(resp.Header.Revision+1), clientv3.WithFilterPut()) {
		if len(wr.Events) > 0 || wr.Err() != nil {
			return
		}
	}
}
