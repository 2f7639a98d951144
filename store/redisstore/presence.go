package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

// Connect records p as the client's presence and returns the presence it replaced and
// the pending takeovers, in one script over the client's presence and takeovers keys.
//
// The node index is written around the script: before it, so that a Connect that fails
// half-way leaves at worst an index entry with no presence (which ClearNode drops), and
// after it, so that a reaper that removed the entry meanwhile cannot leave the new
// presence unindexed. The second write is best effort: a failure is logged, not returned,
// because the presence is already written and the first write normally covers it.
//
// Concurrent Connects are written together (connects.go): each phase once for all of them,
// their scripts in one pipeline, and each returns when its own batch is written, so no
// Connect returns before its presence is recorded.
func (s *Store) Connect(ctx context.Context, p store.Presence) (store.ConnectResult, error) {
	if err := checkPresence(p); err != nil {
		return store.ConnectResult{}, fmt.Errorf("connect: %w", err)
	}
	args, err := presenceArgs(p)
	if err != nil {
		return store.ConnectResult{}, fmt.Errorf("connect: %w", err)
	}
	c := &connectCall{p: p, args: args}
	c.init(ctx, s.keys.presence(p.Client))
	s.connects.add(c)
	res, err := c.wait()
	if err != nil {
		// As with any write whose answer is lost, it may still happen: a retry of the same
		// session is answered with the first result.
		return store.ConnectResult{}, s.fail("connect", err)
	}
	return res, nil
}

// parseConnect reads the connect script's reply: the replaced presence, how many pending
// takeovers it dropped, and the pending takeovers it carried over.
func parseConnect(client string, vals []any) (store.ConnectResult, int64, error) {
	n := len(presenceFieldNames)
	if len(vals) < n+1 || (len(vals)-n-1)%n != 0 {
		return store.ConnectResult{}, 0, fmt.Errorf("connect reply of %d values", len(vals))
	}
	prev, err := parsePresence(client, vals[:n])
	if err != nil {
		return store.ConnectResult{}, 0, err
	}
	dropped, _ := vals[n].(int64)
	res := store.ConnectResult{Prev: prev}
	for rest := vals[n+1:]; len(rest) > 0; rest = rest[n:] {
		p, err := parsePresence(client, rest[:n])
		if err != nil {
			return store.ConnectResult{}, 0, fmt.Errorf("pending takeover: %w", err)
		}
		res.Pending = append(res.Pending, p)
	}
	return res, dropped, nil
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

// presenceKeys are the client's keys in the order the presence scripts take them.
func (s *Store) presenceKeys(client string) []string {
	return []string{s.keys.presence(client), s.keys.takeovers(client)}
}

// ConfirmTakeover clears the pending takeovers that session's Connect left, if session
// owns the client's presence; store.ErrNotOwner otherwise.
func (s *Store) ConfirmTakeover(ctx context.Context, client, session string) error {
	if client == "" {
		return errors.New("confirm takeover: empty client id")
	}
	ok, err := intOf(s.eval(ctx, write, s.scripts.confirm, s.presenceKeys(client), session))
	if err != nil {
		return s.fail("confirm takeover", err)
	}
	if ok != 1 {
		return fmt.Errorf("confirm takeover %q: %w", client, store.ErrNotOwner)
	}
	return nil
}

// Reassert sets the epoch and node of the client's presence to p's if p.Session owns it,
// or records p if the client has no presence and p.Session was not taken over;
// store.ErrNotOwner otherwise.
//
// The index is written around the script as in Connect, so that a client the reaper
// cleared (and so removed from the index) is indexed again under its node.
func (s *Store) Reassert(ctx context.Context, p store.Presence) error {
	if err := checkPresence(p); err != nil {
		return fmt.Errorf("reassert: %w", err)
	}
	args, err := presenceArgs(p)
	if err != nil {
		return fmt.Errorf("reassert: %w", err)
	}
	if err := s.index(ctx, p.Node, p.Epoch, p.Client); err != nil {
		return s.fail("reassert: index", err)
	}
	vals, err := sliceOf(s.eval(ctx, write, s.scripts.reassert, s.presenceKeys(p.Client), args...))
	if err != nil {
		return s.fail("reassert", err)
	}
	if len(vals) != 2 {
		return fmt.Errorf("reassert: reply of %d values", len(vals))
	}
	status, _ := vals[0].(int64)
	was, _ := vals[1].(string)
	if status == 0 {
		return fmt.Errorf("reassert %q: %w", p.Client, store.ErrNotOwner)
	}
	if err := s.index(ctx, p.Node, p.Epoch, p.Client); err != nil {
		s.log.Warn("redisstore: index reasserted client", "client", p.Client, "node", p.Node, "err", err)
	}
	if was != "" && was != p.Node {
		s.unindex(ctx, was, p.Client)
	}
	return nil
}

// Disconnect clears the client's presence if session still owns it, reporting whether it
// did. The pending takeovers stay. A retried call whose first attempt cleared the presence
// reports false.
//
// Concurrent Disconnects are written together (connects.go): their scripts in one
// pipeline, then the clients they cleared out of their nodes' indexes, one batch per node.
// Each script is a compare-and-delete on the session, so a Disconnect written late (after
// a takeover's Connect, in another batch or on another node) clears nothing.
func (s *Store) Disconnect(ctx context.Context, client, session string) (bool, error) {
	if client == "" {
		return false, errors.New("disconnect: empty client id")
	}
	c := &disconnectCall{client: client, session: session}
	c.init(ctx, s.keys.presence(client))
	s.disconnects.add(c)
	ok, err := c.wait()
	if err != nil {
		return false, s.fail("disconnect", err)
	}
	return ok, nil
}

// Lookup returns the client's presence and mailbox depth (both lanes, as Depth) in one
// round trip. It reads the presence key only: pending takeovers live in their own key, so
// a client that has only them is offline. Concurrent Lookups share a round trip
// (connects.go), as LookupAll's do.
func (s *Store) Lookup(ctx context.Context, client string) (store.Presence, int, error) {
	if client == "" {
		return store.Presence{}, 0, errors.New("lookup: empty client id")
	}
	l := s.LookupAll(ctx, []string{client})[0]
	return l.Presence, l.Depth, l.Err
}

// LookupAll is Lookup for each of clients, in one round trip for up to maxBatch of them
// (with any other Lookups waiting), each with its own outcome, in clients' order.
func (s *Store) LookupAll(ctx context.Context, clients []string) []store.LookupResult {
	out := make([]store.LookupResult, len(clients))
	calls := make([]*lookupCall, 0, len(clients))
	for i, client := range clients {
		if client == "" {
			out[i].Err = errors.New("lookup: empty client id")
			continue
		}
		c := &lookupCall{client: client, i: i}
		c.init(ctx, s.keys.presence(client))
		calls = append(calls, c)
	}
	s.lookups.add(calls...)
	for _, c := range calls {
		l, err := c.wait()
		if err != nil {
			l = store.LookupResult{Err: s.fail("lookup", err)}
		}
		out[c.i] = l
	}
	return out
}

// sliceOf, intOf and textOf read the reply of an eval: the error that prevented a reply,
// or Redis's error, or the value.
func sliceOf(cmd *redis.Cmd, err error) ([]any, error) {
	if err != nil {
		return nil, err
	}
	return cmd.Slice()
}

func intOf(cmd *redis.Cmd, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	return cmd.Int()
}

func textOf(cmd *redis.Cmd, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return cmd.Text()
}
