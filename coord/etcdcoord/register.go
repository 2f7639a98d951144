package etcdcoord

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// Register keeps <prefix>/nodes/<id> on a lease of its own, by coord's registration machine.
func (c *Coordinator) Register(ctx context.Context, m coord.Member) (coord.Registration, error) {
	o := coord.RegisterOptions{Timeout: c.ttl, Log: c.log}
	return coord.StartRegistration(ctx, c.g, m, o, func(data []byte) coord.Entry {
		return &entry{c: c, id: m.ID, instance: m.Instance, data: string(data), key: c.nodesPfx + m.ID, markKey: c.quarPfx + m.ID}
	})
}

// entry is a member's key, attached to a lease of the registration's own.
type entry struct {
	c            *Coordinator
	id, instance string
	data         string
	key, markKey string

	lease *keeper // owned by the registration's goroutine; read by others only after it ended
}

// Session returns the registration's lease, granting a new one if it has none or lost it.
func (e *entry) Session(ctx context.Context) (coord.Session, error) {
	if e.lease != nil && !e.lease.p.Load().Lost {
		return e.lease, nil
	}
	e.drop()
	k, err := e.c.grant(ctx)
	if err != nil {
		return nil, err
	}
	e.lease = k
	return k, nil
}

// Create puts the entry on lease s in one transaction that requires both it and the mark absent.
func (e *entry) Create(ctx context.Context, s coord.Session) (coord.Created, error) {
	k := s.(*keeper)
	ctx, cancel := context.WithTimeout(ctx, e.c.cfg.DialTimeout)
	defer cancel()
	resp, err := e.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(e.markKey), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(e.key), "=", 0)).
		Then(clientv3.OpPut(e.key, e.data, clientv3.WithLease(k.id))).
		Else(clientv3.OpGet(e.markKey), clientv3.OpGet(e.key)).
		Commit()
	if err != nil {
		return coord.Created{}, wrap("register", err)
	}
	if resp.Succeeded {
		return coord.Created{Epoch: resp.Header.Revision}, nil
	}
	var mark *coord.Quarantine
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		mark = new(coord.ParseQuarantine(e.id, kvs[0].Value))
	}
	kvs := resp.Responses[1].GetResponseRange().GetKvs()
	if len(kvs) > 0 && clientv3.LeaseID(kvs[0].Lease) == k.id {
		// Ours on this lease: an earlier attempt's answer was lost, or a broken watch made
		// the loop check again.
		return coord.Created{Epoch: kvs[0].CreateRevision, Mark: mark}, nil
	}
	if mark != nil {
		return coord.Created{Mark: mark}, coord.ErrMarked
	}
	if len(kvs) == 0 {
		return coord.Created{}, coord.ErrAgain
	}
	kv := kvs[0]
	var other coord.Member
	_ = json.Unmarshal(kv.Value, &other)
	if other.Instance == e.instance {
		// Left on an older (fenced, unexpired) lease of this process: delete that version.
		e.c.log.Info("deleting own stale entry from an older lease", "node", e.id,
			"lease", fmt.Sprintf("%x", kv.Lease), "current", k.hex())
		same := clientv3.Compare(clientv3.ModRevision(e.key), "=", kv.ModRevision)
		if _, err := e.c.cli.Txn(ctx).If(same).Then(clientv3.OpDelete(e.key)).Commit(); err != nil {
			return coord.Created{}, wrap("delete stale entry", err)
		}
		return coord.Created{}, coord.ErrAgain
	}
	return coord.Created{}, fmt.Errorf("%w (instance %s, lease %x, started %s)", coord.ErrDuplicate,
		other.Instance, kv.Lease, other.StartedAt.Format(time.RFC3339))
}

// Look watches both keys from the revision it read, so that no change in between is missed.
// Watches resume across reconnects; one that breaks (compaction) closes changed too.
func (e *entry) Look(ctx context.Context, s coord.Session, cr coord.Created) (coord.Sight, <-chan struct{}, error) {
	resp, err := e.c.cli.Txn(ctx).Then(clientv3.OpGet(e.key), clientv3.OpGet(e.markKey)).Commit()
	if err != nil {
		return coord.Sight{}, nil, wrap("look", err)
	}
	var v coord.Sight
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		k, _ := s.(*keeper)
		v.Exists = true
		v.Ours = k != nil && kvs[0].CreateRevision == cr.Epoch && clientv3.LeaseID(kvs[0].Lease) == k.id
	}
	if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		v.Mark = new(coord.ParseQuarantine(e.id, kvs[0].Value))
	}
	rev := clientv3.WithRev(resp.Header.Revision + 1)
	changed := coord.LookChanged(ctx, e.c.cli.Watch(ctx, e.key, rev), e.c.cli.Watch(ctx, e.markKey, rev), nil)
	return v, changed, nil
}

// Delete deletes the entry if it is still the one created at cr.Epoch.
func (e *entry) Delete(ctx context.Context, _ coord.Session, cr coord.Created) error {
	created := clientv3.Compare(clientv3.CreateRevision(e.key), "=", cr.Epoch)
	_, err := e.c.cli.Txn(ctx).If(created).Then(clientv3.OpDelete(e.key)).Commit()
	return wrap("withdraw", err)
}

// Retire gives up the fenced lease: the entry comes back under a new lease and epoch.
func (e *entry) Retire(context.Context, coord.Session, coord.Created) { e.drop() }

// drop revokes the registration's lease, if any, in the background.
func (e *entry) drop() {
	if e.lease != nil {
		e.c.revokeLater(e.lease)
		e.lease = nil
	}
}

// Release revokes the lease, which deletes the entry at once.
func (e *entry) Release(ctx context.Context) error {
	if e.lease == nil {
		return nil
	}
	return e.lease.revoke(ctx)
}
