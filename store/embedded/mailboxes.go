package embedded

import (
	"context"
	"encoding/base64"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
)

// Mailboxes walks the boxes bucket, whose entries are exactly the non-empty mailboxes, in
// key order, n at a time in one read transaction. The cursor is the key the next page
// starts at, base64url-encoded.
func (s *Store) Mailboxes(ctx context.Context, cursor string, n int) ([]store.MailboxDepth, string, error) {
	n = min(max(n, 1), store.MaxMailboxesPage)
	start, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, "", fmt.Errorf("mailboxes: cursor %q was not made by this store", cursor)
	}
	var page []store.MailboxDepth
	var next string
	err = s.view(ctx, func(tx *bolt.Tx) error {
		c := bucketsOf(tx).boxes.Cursor()
		k, v := c.First()
		if len(start) > 0 {
			k, v = c.Seek(start)
		}
		for ; k != nil && len(page) < n; k, v = c.Next() {
			client, rest, ok := readName(k)
			if !ok || len(rest) != 0 {
				return fmt.Errorf("%w: mailbox key %.16x", errCorrupt, k)
			}
			box, err := decodeMailbox(v)
			if err != nil {
				return err
			}
			if box.depth > 0 {
				page = append(page, store.MailboxDepth{Client: client, Depth: box.depth})
			}
		}
		if k != nil {
			next = base64.RawURLEncoding.EncodeToString(k)
		}
		return nil
	})
	if err != nil {
		return nil, "", s.fail("mailboxes", err)
	}
	return page, next, nil
}
