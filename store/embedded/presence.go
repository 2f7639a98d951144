package embedded

import (
	"context"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
)

// Connect records p as the client's presence and returns the presence it replaced and
// the pending takeovers it carried over (see store.Store.Connect). The presence, the
// pending takeovers and the node index change in the same transaction. A second Connect
// of the same session returns what the first one returned (less what ConfirmTakeover
// cleared since), so a caller that retries after losing the answer is not told to
// disconnect its own session.
func (s *Store) Connect(ctx context.Context, p store.Presence) (store.ConnectResult, error) {
	if err := checkPresence(p); err != nil {
		return store.ConnectResult{}, fmt.Errorf("connect: %w", err)
	}
	var res store.ConnectResult
	dropped := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		rec, err := b.record(p.Client)
		if err != nil {
			return err
		}
		res, dropped = store.ConnectResult{}, 0
		if err := b.unindex(rec.cur); err != nil {
			return err
		}
		if owns(rec, p.Session) {
			res.Prev = rec.prev
			res.Pending = clonePending(rec.pending[:rec.returned])
			rec.cur = p
			return b.setPresence(rec)
		}
		dropped = max(len(rec.pending)-store.MaxPending, 0)
		carried := rec.pending[dropped:]
		next := record{cur: p, prev: rec.cur, returned: len(carried), pending: slices.Clone(carried)}
		if prev := rec.cur; prev.Online() && prev.Node != p.Node && !hasSession(carried, prev.Session) {
			next.pending = append(next.pending, prev)
		}
		next.left = len(next.pending)
		res.Prev = rec.cur
		res.Pending = clonePending(carried)
		return b.setPresence(next)
	})
	if err != nil {
		return store.ConnectResult{}, s.fail("connect", err)
	}
	if dropped > 0 {
		s.log.Warn("embedded store: dropped the oldest pending takeovers of a client",
			"client", p.Client, "dropped", dropped, "kept", store.MaxPending)
	}
	return res, nil
}

// clonePending is a copy of ps, nil when empty.
func clonePending(ps []store.Presence) []store.Presence {
	if len(ps) == 0 {
		return nil
	}
	return slices.Clone(ps)
}

// hasSession reports whether one of ps is session.
func hasSession(ps []store.Presence, session string) bool {
	return slices.ContainsFunc(ps, func(p store.Presence) bool { return p.Session == session })
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

// ConfirmTakeover clears the pending takeovers that session's Connect left, if session
// owns the client's presence; store.ErrNotOwner otherwise.
func (s *Store) ConfirmTakeover(ctx context.Context, client, session string) error {
	if client == "" {
		return errors.New("confirm takeover: empty client id")
	}
	owner := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		rec, err := b.record(client)
		owner = err == nil && owns(rec, session)
		if !owner || rec.left == 0 {
			return err
		}
		rec.pending = clonePending(rec.pending[rec.left:])
		rec.returned, rec.left = 0, 0
		return b.putRecord(client, rec)
	})
	if err != nil {
		return s.fail("confirm takeover", err)
	}
	if !owner {
		return fmt.Errorf("confirm takeover %q: %w", client, store.ErrNotOwner)
	}
	return nil
}

// Reassert sets the epoch and node of the client's presence to p's if p.Session owns it,
// or records p if the client has no presence and p.Session was not taken over;
// store.ErrNotOwner otherwise.
func (s *Store) Reassert(ctx context.Context, p store.Presence) error {
	if err := checkPresence(p); err != nil {
		return fmt.Errorf("reassert: %w", err)
	}
	owner := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		rec, err := b.record(p.Client)
		if err != nil {
			return err
		}
		next := rec
		switch {
		case owns(rec, p.Session):
			next.cur.Epoch, next.cur.Node = p.Epoch, p.Node
		case !rec.cur.Online() && !hasSession(rec.pending, p.Session):
			next = record{cur: p, pending: rec.pending}
		default:
			owner = false
			return nil
		}
		owner = true
		if err := b.unindex(rec.cur); err != nil {
			return err
		}
		return b.setPresence(next)
	})
	if err != nil {
		return s.fail("reassert", err)
	}
	if !owner {
		return fmt.Errorf("reassert %q: %w", p.Client, store.ErrNotOwner)
	}
	return nil
}

// Disconnect clears the client's presence if session still owns it, reporting whether it
// did. The pending takeovers stay.
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
		return b.clearPresence(client, rec)
	})
	if err != nil {
		return false, s.fail("disconnect", err)
	}
	return owner, nil
}

// Lookup returns the client's presence and mailbox depth, read in one transaction. A
// record that holds only pending takeovers is offline.
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

// LookupAll is Lookup for each of clients, all read in one transaction.
func (s *Store) LookupAll(ctx context.Context, clients []string) []store.LookupResult {
	out := make([]store.LookupResult, len(clients))
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		for i, client := range clients {
			if client == "" {
				out[i].Err = errors.New("lookup: empty client id")
				continue
			}
			rec, err := b.record(client)
			if err != nil {
				out[i].Err = s.fail("lookup", err)
				continue
			}
			box, err := b.mailbox(name(client))
			if err != nil {
				out[i].Err = s.fail("lookup", err)
				continue
			}
			out[i].Presence, out[i].Depth = rec.cur, box.depth
		}
		return nil
	})
	if err != nil {
		for i := range out {
			if out[i].Err == nil {
				out[i] = store.LookupResult{Err: s.fail("lookup", err)}
			}
		}
	}
	return out
}

// owns reports whether session owns the presence in rec.
func owns(rec record, session string) bool {
	return rec.cur.Online() && rec.cur.Session == session
}

// record reads the client's stored record; none is the zero record.
func (b buckets) record(client string) (record, error) {
	v := b.presence.Get([]byte(client))
	if v == nil {
		return record{}, nil
	}
	return decodeRecord(client, v)
}

// putRecord stores rec as client's record, or deletes the record if rec holds nothing.
// It leaves the node index alone.
func (b buckets) putRecord(client string, rec record) error {
	if rec.empty() {
		if err := b.presence.Delete([]byte(client)); err != nil {
			return fmt.Errorf("delete presence of %q: %w", client, err)
		}
		return nil
	}
	if err := b.presence.Put([]byte(client), encodeRecord(rec)); err != nil {
		return fmt.Errorf("put presence of %q: %w", client, err)
	}
	return nil
}

// setPresence stores rec, whose current presence is online, and indexes that presence
// under its node and epoch.
func (b buckets) setPresence(rec record) error {
	p := rec.cur
	if err := b.putRecord(p.Client, rec); err != nil {
		return err
	}
	if err := b.nodes.Put(nodeKey(p.Node, p.Epoch, p.Client), nil); err != nil {
		return fmt.Errorf("index %q on node %q: %w", p.Client, p.Node, err)
	}
	return nil
}

// clearPresence deletes the current presence of rec, client's record, and its index
// entry; the pending takeovers stay, in a record without a presence.
func (b buckets) clearPresence(client string, rec record) error {
	if err := b.putRecord(client, record{pending: rec.pending}); err != nil {
		return err
	}
	return b.unindex(rec.cur)
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
