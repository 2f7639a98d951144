package redisstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

// Mailboxes walks the mailboxes' lane sets (order and high) with SCAN (MATCH on their key
// pattern, TYPE zset): each call is one SCAN of about n keys and one pipelined ZCARD of
// both lanes of each client it found, whose sum is the depth. The cursor is SCAN's. SCAN
// walks the whole database, so a page examines n keys of every kind and returns the
// mailboxes among them.
//
// A mailbox with messages in both lanes has two keys, so a walk may return it twice, with
// the same depth unless it changed between (the walk's contract allows it; a page returns
// each client once). Counting it from either key is what makes a mailbox that exists
// throughout a walk come back at least once, even when one of its lanes empties or first
// fills during it.
//
// On Redis Cluster SCAN sees one node's keys: the walk goes through the primaries in the
// order of their addresses, and the cursor is "<primary>,<its SCAN cursor>". A slot that
// moves during a walk may be walked twice or not at all, as SCAN allows for a key.
func (s *Store) Mailboxes(ctx context.Context, cursor string, n int) ([]store.MailboxDepth, string, error) {
	n = min(max(n, 1), store.MaxMailboxesPage)
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		return s.clusterMailboxes(ctx, c, cursor, n)
	}
	var from uint64
	if cursor != "" {
		var err error
		if from, err = strconv.ParseUint(cursor, 10, 64); err != nil {
			return nil, "", fmt.Errorf("mailboxes: cursor %q was not made by this store", cursor)
		}
	}
	page, next, err := s.mailboxPage(ctx, s.rdb, from, n)
	if err != nil || next == 0 {
		return page, "", err
	}
	return page, strconv.FormatUint(next, 10), nil
}

// clusterMailboxes is one page of a walk of a cluster's mailboxes (see Mailboxes).
func (s *Store) clusterMailboxes(ctx context.Context, c *redis.ClusterClient, cursor string, n int) ([]store.MailboxDepth, string, error) {
	var mu sync.Mutex
	primaries := map[string]*redis.Client{}
	if err := c.ForEachMaster(ctx, func(_ context.Context, m *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		primaries[m.Options().Addr] = m
		return nil
	}); err != nil {
		return nil, "", s.fail("mailboxes", err)
	}
	addrs := slices.Sorted(maps.Keys(primaries))
	at, from := "", uint64(0)
	if cursor != "" {
		a, f, ok := strings.Cut(cursor, ",")
		n, err := strconv.ParseUint(f, 10, 64)
		if !ok || err != nil {
			return nil, "", fmt.Errorf("mailboxes: cursor %q was not made by this store", cursor)
		}
		at, from = a, n
	}
	// The cursor's primary, or the first after it if it is no longer one.
	i, found := slices.BinarySearch(addrs, at)
	if !found {
		from = 0
	}
	if i == len(addrs) {
		return nil, "", nil
	}
	page, next, err := s.mailboxPage(ctx, primaries[addrs[i]], from, n)
	switch {
	case err != nil:
		return nil, "", err
	case next != 0:
		return page, addrs[i] + "," + strconv.FormatUint(next, 10), nil
	case i+1 < len(addrs):
		return page, addrs[i+1] + ",0", nil
	}
	return page, "", nil
}

// mailboxPage is one SCAN of about n keys on scanner from cursor from, and the depths of
// the mailboxes it found.
func (s *Store) mailboxPage(ctx context.Context, scanner redis.Cmdable, from uint64, n int) ([]store.MailboxDepth, uint64, error) {
	found, next, err := scanner.ScanType(ctx, from, s.keys.lanePattern(), int64(n), "zset").Result()
	if err != nil {
		return nil, 0, s.fail("mailboxes", err)
	}
	var clients []string
	seen := map[string]bool{}
	for _, k := range found {
		if client, ok := s.keys.clientOfLane(k); ok && !seen[client] {
			seen[client] = true
			clients = append(clients, client)
		}
	}
	page := make([]store.MailboxDepth, 0, len(clients))
	if len(clients) > 0 {
		pipe := s.rdb.Pipeline()
		normal := make([]*redis.IntCmd, len(clients))
		high := make([]*redis.IntCmd, len(clients))
		for i, c := range clients {
			normal[i], high[i] = s.depthCmds(ctx, pipe, c)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, 0, s.fail("mailboxes", err)
		}
		for i, c := range clients {
			if d := normal[i].Val() + high[i].Val(); d > 0 { // 0: emptied since the SCAN
				page = append(page, store.MailboxDepth{Client: c, Depth: int(d)})
			}
		}
	}
	return page, next, nil
}

// lanePattern is the SCAN pattern of every client's lane sets (order, "o", and high,
// "oh"; no other key of a client has a suffix that starts with "o"), the prefix escaped
// so that a glob character in it matches only itself.
func (k keys) lanePattern() string {
	var b strings.Builder
	for _, r := range k.prefix {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String() + ":{c:*}:o*"
}

// clientOfLane returns the client id of a lane set's key (see keys.order and keys.high).
func (k keys) clientOfLane(key string) (string, bool) {
	enc, ok := strings.CutPrefix(key, k.prefix+":{c:")
	if !ok {
		return "", false
	}
	e, ok := strings.CutSuffix(enc, "}:o")
	if !ok {
		e, ok = strings.CutSuffix(enc, "}:oh")
	}
	if !ok {
		return "", false
	}
	id, err := base64.RawURLEncoding.DecodeString(e)
	if err != nil || len(id) == 0 {
		return "", false
	}
	return string(id), true
}
