package embedded

import (
	"bytes"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
)

// bucketCollapse maps a client's collapse keys to the message that last came with each:
// name(client) followed by the key -> its sequence number (8 bytes) and id. It is created
// by the first append with a collapse key. An entry whose message left the mailbox
// (delivered, expired, removed) is stale — also when the id was sent again since, which
// is another message — counts for nothing and is dropped when met.
var bucketCollapse = []byte("collapse")

func collapseKey(client []byte, key string) []byte {
	return append(append(make([]byte, 0, len(client)+len(key)), client...), key...)
}

// createCollapse creates the collapse bucket when msgs need it.
func createCollapse(tx *bolt.Tx, msgs []store.Message) error {
	for _, m := range msgs {
		if m.CollapseKey != "" {
			_, err := tx.CreateBucketIfNotExists(bucketCollapse)
			return err
		}
	}
	return nil
}

// collapseState returns the id of client's queued message under key ("" if none), and
// how many of client's keys have a queued message. With write it drops stale entries.
func (b buckets) collapseState(client []byte, key string, write bool) (old string, keys int, err error) {
	if b.collapse == nil {
		return "", 0, nil
	}
	want := collapseKey(client, key)
	var stale [][]byte
	c := b.collapse.Cursor()
	for k, v := c.Seek(client); k != nil && bytes.HasPrefix(k, client); k, v = c.Next() {
		if len(v) < 8 || !bytes.Equal(b.ids.Get(idKey(client, string(v[8:]))), v[:8]) {
			stale = append(stale, bytes.Clone(k))
			continue
		}
		keys++
		if bytes.Equal(k, want) {
			old = string(v[8:])
		}
	}
	if write {
		for _, k := range stale {
			if err := b.collapse.Delete(k); err != nil {
				return "", 0, err
			}
		}
	}
	return old, keys, nil
}

// endCollapsed records the collapsed receipt of each registered message an append
// replaced, in Append's transaction; it reports whether it recorded one.
func endCollapsed(tx *bolt.Tx, msgs []store.Message, res []store.AppendResult, now time.Time) (bool, error) {
	var rt receiptTx
	added := false
	for i, r := range res {
		if r.Collapsed == "" {
			continue
		}
		if rt.log == nil {
			var err error
			if rt, err = receiptBucketsOf(tx); err != nil {
				return false, err
			}
		}
		ok, err := rt.end(store.Receipt{Client: msgs[i].To, ID: r.Collapsed, Status: store.ReceiptCollapsed,
			Detail: "replaced by " + msgs[i].ID, OnlyPending: true}, now)
		if err != nil {
			return false, err
		}
		added = added || ok
	}
	return added, nil
}
