package embedded

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
)

// Connect records p as the client's presence and returns the presence it replaced. The
// presence and the node index change in the same transaction. A second Connect of the
// same session returns the presence the first one replaced, so a caller that retries
// after losing the answer is not told to disconnect its own session.
func (s *Store) Connect(ctx context.Context, p store.Presence) (store.Presence, error) {
	if err := checkPresence(p); err != nil {
		return store.Presence{}, fmt.Errorf("connect: %w", err)
	}
	var prev store.Presence
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		rec, err := b.record(p.Client)
		if err != nil {
			return err
		}
		prev = rec.cur
		if rec.cur.Online() && rec.cur.Session == p.Session {
			prev = rec.prev
		}
		if err := b.unindex(rec.cur); err != nil {
			return err
		}
		return b.setPresence(record{cur: p, prev: prev})
	})
	if err != nil {
		return store.Presence{}, s.fail("connect", err)
	}
	return prev, nil
}

func checkPresence(p store.Presence) error {
	switch {
	case p.Client == "":
		return errors.New("empty client id")
	case p.Node == "":
		return fmt.Errorf("client %q: empty node", p.Client)
	case p.Session == "":
		return fmt.Errorf("client %q: empty session", p.Client)
	}
	return nil
}

// Reassert updates the epoch of the client's presence if session still owns it;
// store.ErrNotOwner otherwise.
func (s *Store) Reassert(ctx context.Context, client, session string, epoch int64) error {
	if client == "" {
		return errors.New("reassert: empty client id")
	}
	owner := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		rec, err := b.record(client)
		owner = err == nil && owns(rec, session)
		if !owner {
			return err
		}
		if err := b.unindex(rec.cur); err != nil {
			return err
		}
		rec.cur.Epoch = epoch
		return b.setPresence(rec)
	})
	if err != nil {
		return s.fail("reassert", err)
	}
	if !owner {
		return fmt.Errorf("reassert %q: %w", client, store.ErrNotOwner)
	}
	return nil
}

// Disconnect clears the client's presence if session still owns it, reporting whether it
// did.
func (s *Store) Disconnect(ctx context.Context, client, session string) (bool, error) {
	if client == "" {
		return false, errors.New("disconnect: empty client id")
	}
	owner := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		rec, err := b.record(client)
		owner = err == nil && owns(rec, session)
		if !owner {
			return err
		}
		return b.clearPresence(rec.cur)
	})
	if err != nil {
		return false, s.fail("disconnect", err)
	}
	return owner, nil
}

// Lookup returns the client's presence and mailbox depth, read in one transaction.
func (s *Store) Lookup(ctx context.Context, client string) (store.Presence, int, error) {
	if client == "" {
		return store.Presence{}, 0, errors.New("lookup: empty client id")
	}
	var p store.Presence
	var box mailbox
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		rec, err := b.record(client)
		if err != nil {
			return err
		}
		p = rec.cur
		box, err = b.mailbox(name(client))
		return err
	})
	if err != nil {
		return store.Presence{}, 0, s.fail("lookup", err)
	}
	return p, box.depth, nil
}

// owns reports whether session owns the presence in rec.
func owns(rec record, session string) bool {
	return rec.cur.Online() && rec.cur.Session == session
}

// record reads the client's stored presence; none is the zero record.
func (b buckets) record(client string) (record, error) {
	v := b.presence.Get([]byte(client))
	if v == nil {
		return record{}, nil
	}
	return decodeRecord(client, v)
}

// setPresence stores rec and indexes its current presence under its node and epoch.
func (b buckets) setPresence(rec record) error {
	p := rec.cur
	if err := b.presence.Put([]byte(p.Client), encodeRecord(rec)); err != nil {
		return fmt.Errorf("put presence of %q: %w", p.Client, err)
	}
	if err := b.nodes.Put(nodeKey(p.Node, p.Epoch, p.Client), nil); err != nil {
		return fmt.Errorf("index %q on node %q: %w", p.Client, p.Node, err)
	}
	return nil
}

// clearPresence deletes p, the client's current presence, and its index entry.
func (b buckets) clearPresence(p store.Presence) error {
	if err := b.presence.Delete([]byte(p.Client)); err != nil {
		return fmt.Errorf("delete presence of %q: %w", p.Client, err)
	}
	return b.unindex(p)
}

// unindex deletes p's node index entry, if p is a presence.
func (b buckets) unindex(p store.Presence) error {
	if !p.Online() {
		return nil
	}
	if err := b.nodes.Delete(nodeKey(p.Node, p.Epoch, p.Client)); err != nil {
		return fmt.Errorf("unindex %q on node %q: %w", p.Client, p.Node, err)
	}
	return nil
}
