package etcdcoord

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// Members lists the live members (a linearizable read: current even from a follower).
func (c *Coordinator) Members(ctx context.Context) ([]coord.Member, error) {
	return list(ctx, c, "list members", c.nodesPfx, coord.DecodeMember)
}

// WatchMembers delivers the live member set now and after every change.
func (c *Coordinator) WatchMembers(ctx context.Context) (<-chan []coord.Member, error) {
	return coord.Deliver(ctx, c.g, follow(c, c.nodesPfx, coord.DecodeMember))
}

// Quarantines lists the standing quarantine marks.
func (c *Coordinator) Quarantines(ctx context.Context) ([]coord.Quarantine, error) {
	return list(ctx, c, "list quarantines", c.quarPfx, coord.DecodeMark)
}

// WatchQuarantines delivers the standing marks now and after every change.
func (c *Coordinator) WatchQuarantines(ctx context.Context) (<-chan []coord.Quarantine, error) {
	return coord.Deliver(ctx, c.g, follow(c, c.quarPfx, coord.DecodeMark))
}

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

// list reads every entry under pfx, in key order.
func list[T any](ctx context.Context, c *Coordinator, op, pfx string, decode coord.Decoder[T]) ([]T, error) {
	resp, err := c.cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, wrap(op, err)
	}
	return decodeAll(pfx, resp.Kvs, decode), nil
}

// decodeAll decodes, in key order, the kvs directly under pfx; keys deeper down are not ours.
func decodeAll[T any](pfx string, kvs []*mvccpb.KeyValue, decode coord.Decoder[T]) []T {
	slices.SortFunc(kvs, func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
	out := make([]T, 0, len(kvs))
	for _, kv := range kvs {
		if name := strings.TrimPrefix(string(kv.Key), pfx); name != "" && !strings.Contains(name, "/") {
			out = append(out, decode(name, kv.Value, kv.CreateRevision))
		}
	}
	return out
}

// follow is coord.Deliver's follow for the entries under pfx: it lists pfx and follows a watch
// from there until the watch breaks (compaction, loss of the leader: a pause, then a new list),
// the connection comes back after a loss (a new list at once), or ctx ends.
func follow[T any](c *Coordinator, pfx string, decode coord.Decoder[T]) func(context.Context, func([]T)) bool {
	return func(ctx context.Context, send func([]T)) bool {
		gen, linkChanged := c.linkGen.Get()
		resp, err := c.cli.Get(ctx, pfx, clientv3.WithPrefix())
		if err != nil {
			return false
		}
		kvs := make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			kvs[string(kv.Key)] = kv
		}
		sendAll := func() { send(decodeAll(pfx, slices.Collect(maps.Values(kvs)), decode)) }
		sendAll()

		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		wch := c.cli.Watch(wctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for {
			select {
			case wr, ok := <-wch:
				if !ok || wr.Err() != nil {
					return false
				}
				if len(wr.Events) == 0 {
					continue
				}
				for _, ev := range wr.Events {
					if ev.Type == mvccpb.DELETE {
						delete(kvs, string(ev.Kv.Key))
					} else {
						kvs[string(ev.Kv.Key)] = ev.Kv
					}
				}
				sendAll()
			case <-linkChanged:
				g, ch := c.linkGen.Get()
				if g != gen {
					return true // reconnected: list again rather than trust the stream
				}
				linkChanged = ch
			case <-ctx.Done():
				return true
			}
		}
	}
}
