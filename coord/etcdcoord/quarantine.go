package etcdcoord

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// SetQuarantine writes a quarantine mark; with a fence, only in a transaction that finds the
// fence's leader key still there under the create revision it was elected with.
func (c *Coordinator) SetQuarantine(ctx context.Context, q coord.Quarantine, fence coord.Leadership) error {
	data, err := coord.EncodeQuarantine(q)
	if err != nil {
		return err
	}
	op := "quarantine " + q.Node
	var fenced []clientv3.Cmp // none without a fence: the transaction then always succeeds
	if fence != nil {
		l, err := coord.FenceOf(fence, func(b *ballot) bool { return b.c == c })
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		fenced = append(fenced, clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev))
	}
	resp, err := c.cli.Txn(ctx).If(fenced...).Then(clientv3.OpPut(c.quarPfx+q.Node, string(data))).Commit()
	if err != nil {
		return wrap(op, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s: %w", op, coord.ErrNotLeader)
	}
	return nil
}

// Release deletes a quarantine mark.
func (c *Coordinator) Release(ctx context.Context, node string) error {
	if err := coord.ValidateID(node); err != nil {
		return err
	}
	resp, err := c.cli.Delete(ctx, c.quarPfx+node)
	if err != nil {
		return wrap("release "+node, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("release %s: %w", node, coord.ErrNotFound)
	}
	return nil
}
