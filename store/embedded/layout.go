package embedded

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The store's buckets; doc.go describes what each holds.
var (
	bucketPresence = []byte("presence")
	bucketNodes    = []byte("nodes")
	bucketBoxes    = []byte("boxes")
	bucketMessages = []byte("messages")
	bucketIDs      = []byte("ids")
	bucketExpiry   = []byte("expiry")
	bucketMeta     = []byte("meta")
	bucketRetained = []byte("retained")

	allBuckets = [][]byte{bucketPresence, bucketNodes, bucketBoxes, bucketMessages, bucketIDs, bucketExpiry, bucketMeta, bucketRetained}

	// metaSeq is the meta key of the last sequence number given to a message.
	metaSeq = []byte("seq")
	// metaRetainedSeq is the meta key of the last version given to a retained change.
	metaRetainedSeq = []byte("rseq")
)

// name is a client id or node name as a key part: its length as a uvarint, then its bytes.
// The encoding is prefix-free, so the keys of one client (or node) form one contiguous
// range that holds no other's, whatever bytes the ids contain.
func name(s string) []byte {
	return appendName(make([]byte, 0, len(s)+binary.MaxVarintLen64), s)
}

func appendName(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// readName splits a name off the front of b; ok is false if b does not start with one.
func readName(b []byte) (s string, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return "", nil, false
	}
	return string(b[w : w+int(n)]), b[w+int(n):], true
}

// seqKey is the key of message seq in client's mailbox: name(client), then seq big-endian,
// so a cursor walks a mailbox oldest first.
func seqKey(client []byte, seq uint64) []byte {
	k := make([]byte, 0, len(client)+8)
	return binary.BigEndian.AppendUint64(append(k, client...), seq)
}

// idKey is the key of message id's entry in client's id index.
func idKey(client []byte, id string) []byte {
	k := make([]byte, 0, len(client)+len(id))
	return append(append(k, client...), id...)
}

// nodeKey is the node index entry of client on node at epoch: name(node), epoch
// big-endian with the sign bit flipped (so negative epochs sort first), name(client).
func nodeKey(node string, epoch int64, client string) []byte {
	k := make([]byte, 0, len(node)+len(client)+2*binary.MaxVarintLen64+8)
	k = appendName(k, node)
	k = binary.BigEndian.AppendUint64(k, orderedInt(epoch))
	return appendName(k, client)
}

// nodeEpochPrefix is the start of every nodeKey of node at epoch.
func nodeEpochPrefix(node string, epoch int64) []byte {
	return binary.BigEndian.AppendUint64(name(node), orderedInt(epoch))
}

// retainedKey is the key of topic's retained message: the topic's SHA-256. A topic may be
// 64 KiB long, twice what a bbolt key holds; the value holds the topic itself.
func retainedKey(topic string) []byte {
	h := sha256.Sum256([]byte(topic))
	return h[:]
}

// expiryKey is the expiry index entry of message seq of client: the expiry in Unix
// nanoseconds (clamped to the int64 range, sign bit flipped), name(client), seq. A cursor
// walks it soonest expiry first.
func expiryKey(expires time.Time, client []byte, seq uint64) []byte {
	k := make([]byte, 0, 16+len(client))
	k = binary.BigEndian.AppendUint64(k, orderedInt(unixNanos(expires)))
	k = append(k, client...)
	return binary.BigEndian.AppendUint64(k, seq)
}

// expired reports whether a message that expires at expires has expired at now.
func expired(expires, now time.Time) bool { return !now.Before(expires) }

// expiryBound is the smallest expiry key of a message that has not expired at now: a
// message expires when now is not before its expiry (see expired), so every key below
// holds an expired message.
// At or after the year 2262, which the key cannot tell apart, it is nil: everything.
func expiryBound(now time.Time) []byte {
	u := orderedInt(unixNanos(now))
	if u == math.MaxUint64 {
		return nil
	}
	return binary.BigEndian.AppendUint64(nil, u+1)
}

// parseExpiryKey returns the client name and sequence number of an expiry index entry.
func parseExpiryKey(k []byte) (client []byte, seq uint64, ok bool) {
	if len(k) < 16 {
		return nil, 0, false
	}
	client = k[8 : len(k)-8]
	if _, rest, ok := readName(client); !ok || len(rest) != 0 {
		return nil, 0, false
	}
	return client, binary.BigEndian.Uint64(k[len(k)-8:]), true
}

// unixNanos is t in Unix nanoseconds, clamped to the int64 range (years 1678 to 2262).
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// orderedInt maps an int64 to a uint64 whose big-endian bytes sort in the int64's order.
func orderedInt(v int64) uint64 { return uint64(v) ^ (1 << 63) }

// readOrderedInt reads back the int64 whose orderedInt the first 8 bytes of b hold.
func readOrderedInt(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// buckets are the store's buckets inside one transaction.
type buckets struct {
	presence, nodes, boxes, messages, ids, expiry, meta, retained *bolt.Bucket
	// collapse is nil until a write created it (see collapse.go).
	collapse *bolt.Bucket
	// high is nil until a write created it (see priority.go).
	high *bolt.Bucket
}

// bucketsOf returns tx's buckets; Open created them all.
func bucketsOf(tx *bolt.Tx) buckets {
	return buckets{
		presence: tx.Bucket(bucketPresence),
		nodes:    tx.Bucket(bucketNodes),
		boxes:    tx.Bucket(bucketBoxes),
		messages: tx.Bucket(bucketMessages),
		ids:      tx.Bucket(bucketIDs),
		expiry:   tx.Bucket(bucketExpiry),
		meta:     tx.Bucket(bucketMeta),
		retained: tx.Bucket(bucketRetained),
		collapse: tx.Bucket(bucketCollapse),
		high:     tx.Bucket(bucketHigh),
	}
}
