package zkcoord

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/go-zookeeper/zk"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// Members implements coord.Membership, after a sync (listSynced).
func (c *Coordinator) Members(ctx context.Context) ([]coord.Member, error) {
	return listSynced(ctx, c, c.nodesDir, "members", coord.DecodeMember)
}

// WatchMembers implements coord.Membership.
func (c *Coordinator) WatchMembers(ctx context.Context) (<-chan []coord.Member, error) {
	return watchChildren(ctx, c, c.nodesDir, coord.DecodeMember)
}

// Quarantines implements coord.Marks, after a sync.
func (c *Coordinator) Quarantines(ctx context.Context) ([]coord.Quarantine, error) {
	return listSynced(ctx, c, c.quarDir, "quarantines", coord.DecodeMark)
}

// listSynced lists dir's children after a sync, so that a read from a follower is current.
func listSynced[T any](ctx context.Context, c *Coordinator, dir, what string, decode coord.Decoder[T]) ([]T, error) {
	if _, err := call(ctx, func() (string, error) { return c.conn.Sync(dir) }); err != nil {
		return nil, wrap("sync", err)
	}
	set, _, err := listChildren(ctx, c, dir, false, decode)
	return set, wrap("list "+what, err)
}

// WatchQuarantines implements coord.Marks.
func (c *Coordinator) WatchQuarantines(ctx context.Context) (<-chan []coord.Quarantine, error) {
	return watchChildren(ctx, c, c.quarDir, coord.DecodeMark)
}

// SetQuarantine implements coord.Marks.
func (c *Coordinator) SetQuarantine(ctx context.Context, q coord.Quarantine, fence coord.Leadership) error {
	data, err := coord.EncodeQuarantine(q)
	if err != nil {
		return err
	}
	var check []any
	if fence != nil {
		l, err := coord.FenceOf(fence, func(b *ballot) bool { return b.c == c })
		if err != nil {
			return fmt.Errorf("quarantine %s: %w", q.Node, err)
		}
		// The candidate znode is never modified, so version 0 proves it still exists: it
		// vanishes with the leader's session, and a deposed leader's write then fails.
		check = append(check, &zk.CheckVersionRequest{Path: l.path, Version: 0})
	}
	p := c.markPath(q.Node)
	for range 3 {
		ok, _, err := call2(ctx, c.conn.Exists, p)
		if err != nil {
			return wrap("quarantine", err)
		}
		var op any = &zk.CreateRequest{Path: p, Data: data, Acl: c.acl}
		if ok {
			op = &zk.SetDataRequest{Path: p, Data: data, Version: -1}
		}
		res, err := call(ctx, func() ([]zk.MultiResponse, error) { return c.conn.Multi(append(check, op)...) })
		if err == nil {
			return nil
		}
		if fence != nil && len(res) > 0 &&
			(errors.Is(res[0].Error, zk.ErrNoNode) || errors.Is(res[0].Error, zk.ErrBadVersion)) {
			return fmt.Errorf("quarantine %s: %w", q.Node, coord.ErrNotLeader)
		}
		if errors.Is(err, zk.ErrNodeExists) || errors.Is(err, zk.ErrNoNode) {
			continue // raced with another writer of the same mark; look again
		}
		return wrap("quarantine", err)
	}
	return fmt.Errorf("quarantine %s: concurrent writers; try again", q.Node)
}

// Release implements coord.Marks.
func (c *Coordinator) Release(ctx context.Context, node string) error {
	if err := coord.ValidateID(node); err != nil {
		return err
	}
	return wrap("release "+node, c.delete(ctx, c.markPath(node), -1))
}

// listChildren reads every child of dir and its data, and with watch arms a children watch.
// It reads again if the children changed meanwhile (a child deleted and created again would
// show an epoch newer than the listing): callers judge an epoch missing from the set as gone
// only because the set is one the directory held at one moment.
func listChildren[T any](ctx context.Context, c *Coordinator, dir string, watch bool,
	decode coord.Decoder[T]) ([]T, <-chan zk.Event, error) {
	list := c.conn.ChildrenW
	if !watch {
		list = func(p string) ([]string, *zk.Stat, <-chan zk.Event, error) {
			names, st, err := c.conn.Children(p)
			return names, st, nil, err
		}
	}
	for {
		names, listed, ch, err := call3(ctx, list, dir)
		if err != nil {
			return nil, nil, err
		}
		slices.Sort(names)
		out := make([]T, 0, len(names))
		for _, name := range names {
			data, st, err := call2(ctx, c.conn.Get, dir+"/"+name)
			if errors.Is(err, zk.ErrNoNode) {
				continue // deleted since the listing; the watch reports it
			}
			if err != nil {
				return nil, nil, err
			}
			out = append(out, decode(name, data, st.Czxid))
		}
		if len(names) == 0 {
			return out, ch, nil
		}
		// Stats are read only after a call without an error: the library gives one then.
		_, after, err := call2(ctx, c.conn.Exists, dir)
		if err != nil {
			return nil, nil, err
		}
		if after.Cversion == listed.Cversion {
			return out, ch, nil
		}
	}
}

// watchChildren delivers dir's children now and after every change, re-arming the one-shot
// watch and re-listing after every reconnect (events during a disconnection are lost).
func watchChildren[T any](ctx context.Context, c *Coordinator, dir string, decode coord.Decoder[T]) (<-chan []T, error) {
	return coord.Deliver(ctx, c.g, func(ctx context.Context, send func([]T)) bool {
		gen, err := c.waitSession(ctx)
		if err != nil {
			return false
		}
		_, _ = call(ctx, func() (string, error) { return c.conn.Sync(dir) })
		set, ch, err := listChildren(ctx, c, dir, true, decode)
		if err != nil {
			return false
		}
		send(set)
		// Wait for the watch or a new session generation (a reconnect).
		for {
			s, changed := c.sess.Get()
			if s.gen != gen {
				return true
			}
			select {
			case <-ch:
				return true
			case <-changed:
			case <-ctx.Done():
				return false
			}
		}
	})
}
