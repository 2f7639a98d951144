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

// Mailboxes walks the mailboxes' order sets with SCAN (MATCH on their key pattern, TYPE
// zset): each call is one SCAN of about n keys and one pipelined ZCARD of those it found.
// The cursor is SCAN's. SCAN walks the whole database, so a page examines n keys of every
// kind and returns the mailboxes among them.
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
	found, next, err := scanner.ScanType(ctx, from, s.keys.orderPattern(), int64(n), "zset").Result()
	if err != nil {
		return nil, 0, s.fail("mailboxes", err)
	}
	page := make([]store.MailboxDepth, 0, len(found))
	if len(found) > 0 {
		pipe := s.rdb.Pipeline()
		cards := make([]*redis.IntCmd, len(found))
		for i, k := range found {
			cards[i] = pipe.ZCard(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, 0, s.fail("mailboxes", err)
		}
		for i, k := range found {
			client, ok := s.keys.clientOfOrder(k)
			if d := cards[i].Val(); ok && d > 0 { // 0: emptied since the SCAN
				page = append(page, store.MailboxDepth{Client: client, Depth: int(d)})
			}
		}
	}
	return page, next, nil
}

// orderPattern is the SCAN pattern of every client's order set, the prefix escaped so
// that a glob character in it matches only itself.
func (k keys) orderPattern() string {
	var b strings.Builder
	for _, r := range k.prefix {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String() + ":{c:*}:o"
}

// clientOfOrder returns the client id of an order set's key (see keys.order).
func (k keys) clientOfOrder(key string) (string, bool) {
	enc, ok := strings.CutPrefix(key, k.prefix+":{c:")
	if !ok {
		return "", false
	}
	if enc, ok = strings.CutSuffix(enc, "}:o"); !ok {
		return "", false
	}
	id, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(id) == 0 {
		return "", false
	}
	return string(id), true
}
