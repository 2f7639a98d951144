package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchboard-mqtt/switchboard/store"
)

var _ store.Receipts = (*Store)(nil)

// The receipt buckets are created by the first write that needs them, as the groups' are,
// so that a file made before them opens unchanged:
//
//	rlog    receipt number (8 bytes, big-endian) -> the receipt (JSON, storedReceipt)
//	rpend   store.MessageKey -> the registered message's expiry (Unix ns, 8 bytes)
//	rpendx  expiry (8 bytes) + MessageKey -> nothing: rpend by expiry, for the sweep
//	rstate  MessageKey -> the terminal receipt (JSON, with its number)
//	rdone   when it ended (Unix ns, 8 bytes) + MessageKey -> nothing: for the retention
//	rcons   consumer name -> its state and lease (JSON, storedConsumer)
//
// A receipt's cursor is its number in decimal. Numbers come from the meta key rseq and are
// never reused.
var (
	bucketReceiptLog   = []byte("rlog")
	bucketReceiptPend  = []byte("rpend")
	bucketReceiptPendX = []byte("rpendx")
	bucketReceiptState = []byte("rstate")
	bucketReceiptDone  = []byte("rdone")
	bucketConsumers    = []byte("rcons")

	receiptBuckets = [][]byte{bucketReceiptLog, bucketReceiptPend, bucketReceiptPendX, bucketReceiptState, bucketReceiptDone, bucketConsumers}

	metaReceiptSeq = []byte("receiptseq")
)

// storedReceipt is a receipt as the buckets keep it.
type storedReceipt struct {
	Seq      uint64 `json:"q"`
	Client   string `json:"c"`
	ID       string `json:"i"`
	Status   string `json:"s"`
	Node     string `json:"n,omitempty"`
	Attempts int    `json:"a,omitempty"`
	Detail   string `json:"d,omitempty"`
	At       int64  `json:"t"` // Unix ns
}

func (r storedReceipt) receipt() store.Receipt {
	return store.Receipt{
		Cursor: strconv.FormatUint(r.Seq, 10), Client: r.Client, ID: r.ID, Status: store.ReceiptStatus(r.Status),
		Node: r.Node, Attempts: r.Attempts, Detail: r.Detail, At: time.Unix(0, r.At),
	}
}

type storedConsumer struct {
	Cursor string `json:"cursor,omitempty"`
	Dead   int64  `json:"dead,omitempty"`
	Holder string `json:"holder,omitempty"`
	Lease  int64  `json:"lease,omitempty"` // Unix ns
}

// receiptWake tells readers waiting in ReadReceipts that receipts were recorded.
type receiptWake struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next broadcast.
func (w *receiptWake) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *receiptWake) broadcast() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// receiptTx is the receipt buckets of one write transaction.
type receiptTx struct {
	log, pend, pendx, state, done, cons, meta *bolt.Bucket
}

func receiptBucketsOf(tx *bolt.Tx) (receiptTx, error) {
	var bs [6]*bolt.Bucket
	for i, name := range receiptBuckets {
		b, err := tx.CreateBucketIfNotExists(name)
		if err != nil {
			return receiptTx{}, err
		}
		bs[i] = b
	}
	return receiptTx{log: bs[0], pend: bs[1], pendx: bs[2], state: bs[3], done: bs[4], cons: bs[5], meta: tx.Bucket(bucketMeta)}, nil
}

func nanoKey(ns int64, key string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, orderedInt(ns)), key...)
}

// register records msgs with Receipt set as pending, expiring at now plus their TTL,
// unless they ended already. Part of Append's transaction.
func registerReceipts(tx *bolt.Tx, msgs []store.Message, now time.Time) error {
	var rt receiptTx
	for _, m := range msgs {
		if !m.Receipt {
			continue
		}
		if rt.log == nil {
			var err error
			if rt, err = receiptBucketsOf(tx); err != nil {
				return err
			}
		}
		key := store.MessageKey(m.To, m.ID)
		if rt.state.Get([]byte(key)) != nil || rt.pend.Get([]byte(key)) != nil {
			continue
		}
		exp := unixNanos(now.Add(m.TTL))
		if err := rt.pend.Put([]byte(key), binary.BigEndian.AppendUint64(nil, uint64(exp))); err != nil {
			return err
		}
		if err := rt.pendx.Put(nanoKey(exp, key), nil); err != nil {
			return err
		}
	}
	return nil
}

// end records r as key's terminal receipt, unless it has one, or onlyPending and it is not
// registered. It reports whether it did.
func (rt receiptTx) end(r store.Receipt, now time.Time) (bool, error) {
	key := []byte(store.MessageKey(r.Client, r.ID))
	if rt.state.Get(key) != nil {
		return false, nil
	}
	if v := rt.pend.Get(key); v != nil {
		if len(v) == 8 {
			if err := rt.pendx.Delete(nanoKey(int64(binary.BigEndian.Uint64(v)), string(key))); err != nil {
				return false, err
			}
		}
		if err := rt.pend.Delete(key); err != nil {
			return false, err
		}
	} else if r.OnlyPending {
		return false, nil
	}
	seq := uint64(1)
	if v := rt.meta.Get(metaReceiptSeq); len(v) == 8 {
		seq = binary.BigEndian.Uint64(v) + 1
	}
	if err := rt.meta.Put(metaReceiptSeq, binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return false, err
	}
	at := unixNanos(now)
	sr := storedReceipt{Seq: seq, Client: r.Client, ID: r.ID, Status: string(r.Status), Node: r.Node, Attempts: r.Attempts, Detail: r.Detail, At: at}
	v, err := json.Marshal(sr)
	if err != nil {
		return false, err
	}
	if err := rt.log.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
		return false, err
	}
	if err := rt.state.Put(key, v); err != nil {
		return false, err
	}
	return true, rt.done.Put(nanoKey(at, string(key)), nil)
}

// Finish records receipts in one transaction, in slice order.
func (s *Store) Finish(ctx context.Context, rs ...store.Receipt) error {
	for _, r := range rs {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("finish: %w", err)
		}
	}
	if len(rs) == 0 {
		return nil
	}
	added := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		added = false
		rt, err := receiptBucketsOf(tx)
		if err != nil {
			return err
		}
		now := time.Now()
		for _, r := range rs {
			ok, err := rt.end(r, now)
			if err != nil {
				return err
			}
			added = added || ok
		}
		return nil
	})
	if err != nil {
		return s.fail("finish", err)
	}
	if added {
		s.rwake.broadcast()
	}
	return nil
}

// SweepReceipts expires registered messages past their expiry and the grace, and drops
// what the retention allows, in one transaction.
func (s *Store) SweepReceipts(ctx context.Context, o store.SweepOptions) (int, error) {
	maxN := min(max(o.Max, 0), store.MaxReceiptsRead)
	var keep uint64
	if o.Keep != "" {
		var err error
		if keep, err = strconv.ParseUint(o.Keep, 10, 64); err != nil {
			return 0, fmt.Errorf("sweep receipts: cursor %.64q: %w (want a decimal number)", o.Keep, store.ErrBadCursor)
		}
	}
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		rt, err := receiptBucketsOf(tx)
		if err != nil {
			return err
		}
		now := time.Now()
		due := unixNanos(now.Add(-o.Grace))
		var keys []string
		c := rt.pendx.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < maxN; k, _ = c.Next() {
			if len(k) < 8 || readOrderedInt(k) > due {
				break
			}
			keys = append(keys, string(k[8:]))
		}
		for _, key := range keys {
			client, id, ok := bytes.Cut([]byte(key), []byte{0})
			if !ok {
				return fmt.Errorf("%w: receipt key %q", errCorrupt, key)
			}
			ok, err := rt.end(store.Receipt{Client: string(client), ID: string(id), Status: store.ReceiptExpired, Detail: "its TTL ran out before it was delivered"}, now)
			if err != nil {
				return err
			}
			if ok {
				n++
			}
		}
		if o.Retention <= 0 {
			return nil
		}
		old := unixNanos(now.Add(-o.Retention))
		var gone [][]byte
		dc := rt.done.Cursor()
		for k, _ := dc.First(); k != nil && len(gone) < 10*store.MaxReceiptsRead; k, _ = dc.Next() {
			if len(k) < 8 || readOrderedInt(k) > old {
				break
			}
			gone = append(gone, bytes.Clone(k))
		}
		for _, k := range gone {
			if err := rt.state.Delete(k[8:]); err != nil {
				return err
			}
			if err := rt.done.Delete(k); err != nil {
				return err
			}
		}
		if o.KeepLog {
			return nil
		}
		var trim [][]byte
		lc := rt.log.Cursor()
		for k, v := lc.First(); k != nil && len(trim) < 10*store.MaxReceiptsRead; k, v = lc.Next() {
			var sr storedReceipt
			if err := json.Unmarshal(v, &sr); err != nil {
				return fmt.Errorf("%w: receipt %x: %v", errCorrupt, k, err)
			}
			if sr.At > old || (o.Keep != "" && sr.Seq > keep) {
				break
			}
			trim = append(trim, bytes.Clone(k))
		}
		for _, k := range trim {
			if err := rt.log.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, s.fail("sweep receipts", err)
	}
	if n > 0 {
		s.rwake.broadcast()
	}
	return n, nil
}

// ReadReceipts reads the log after a cursor, waiting up to wait for a first receipt.
func (s *Store) ReadReceipts(ctx context.Context, after string, n int, wait time.Duration) ([]store.Receipt, error) {
	var from uint64
	if after != "" {
		var err error
		if from, err = strconv.ParseUint(after, 10, 64); err != nil {
			return nil, fmt.Errorf("read receipts: cursor %.64q: %w (want a decimal number)", after, store.ErrBadCursor)
		}
	}
	if from == math.MaxUint64 {
		return nil, nil // nothing can follow it (and from+1 would wrap to the start)
	}
	n = min(max(n, 0), store.MaxReceiptsRead)
	if n == 0 {
		return nil, nil
	}
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		woken := s.rwake.wait() // before the read, so a receipt recorded after it wakes us
		var out []store.Receipt
		err := s.view(ctx, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketReceiptLog)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, from+1)); k != nil && len(out) < n; k, v = c.Next() {
				var sr storedReceipt
				if err := json.Unmarshal(v, &sr); err != nil {
					return fmt.Errorf("%w: receipt %x: %v", errCorrupt, k, err)
				}
				out = append(out, sr.receipt())
			}
			return nil
		})
		if err != nil {
			return nil, s.fail("read receipts", err)
		}
		if len(out) > 0 || deadline == nil {
			return out, nil
		}
		select {
		case <-woken:
		case <-deadline:
			return nil, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("read receipts: %w", ctx.Err())
		case <-s.closing:
			return nil, s.fail("read receipts", errClosed)
		}
	}
}

// ReceiptsTail returns the cursor of the newest receipt.
func (s *Store) ReceiptsTail(ctx context.Context) (string, error) {
	tail := ""
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketReceiptLog); b != nil {
			if k, _ := b.Cursor().Last(); len(k) == 8 {
				tail = strconv.FormatUint(binary.BigEndian.Uint64(k), 10)
			}
		}
		return nil
	})
	if err != nil {
		return "", s.fail("receipts tail", err)
	}
	return tail, nil
}

// MessageState returns whether a message is pending or how it ended.
func (s *Store) MessageState(ctx context.Context, client, id string) (store.MessageState, error) {
	st := store.MessageState{Client: client, ID: id}
	found := false
	err := s.view(ctx, func(tx *bolt.Tx) error {
		key := []byte(store.MessageKey(client, id))
		if b := tx.Bucket(bucketReceiptState); b != nil {
			if v := b.Get(key); v != nil {
				var sr storedReceipt
				if err := json.Unmarshal(v, &sr); err != nil {
					return fmt.Errorf("%w: receipt state of %q: %v", errCorrupt, id, err)
				}
				st.Receipt, found = sr.receipt(), true
				return nil
			}
		}
		if b := tx.Bucket(bucketReceiptPend); b != nil {
			if v := b.Get(key); len(v) == 8 {
				st.Pending, found = true, true
				st.TTL = max(time.Until(time.Unix(0, int64(binary.BigEndian.Uint64(v)))), 0)
			}
		}
		return nil
	})
	if err != nil {
		return store.MessageState{}, s.fail("message state", err)
	}
	if !found {
		return store.MessageState{}, fmt.Errorf("message %q to %q: %w", id, client, store.ErrNoMessage)
	}
	return st, nil
}

func (s *Store) consumer(tx *bolt.Tx, name string) (storedConsumer, error) {
	var c storedConsumer
	b := tx.Bucket(bucketConsumers)
	if b == nil {
		return c, nil
	}
	v := b.Get([]byte(name))
	if v == nil {
		return c, nil
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("%w: consumer %q: %v", errCorrupt, name, err)
	}
	return c, nil
}

func putConsumer(tx *bolt.Tx, name string, c storedConsumer) error {
	rt, err := receiptBucketsOf(tx)
	if err != nil {
		return err
	}
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return rt.cons.Put([]byte(name), v)
}

// Consumer returns the named consumer's state.
func (s *Store) Consumer(ctx context.Context, name string) (store.Consumer, error) {
	var c storedConsumer
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		c, err = s.consumer(tx, name)
		return err
	})
	if err != nil {
		return store.Consumer{}, s.fail("consumer", err)
	}
	return store.Consumer{Cursor: c.Cursor, Dead: c.Dead}, nil
}

// SetConsumer stores the consumer's state if holder holds its lease.
func (s *Store) SetConsumer(ctx context.Context, name, holder string, c store.Consumer) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		cur, err := s.consumer(tx, name)
		if err != nil {
			return err
		}
		if cur.Holder != holder {
			return fmt.Errorf("consumer %q is held by %q, not %q: %w", name, cur.Holder, holder, store.ErrNotOwner)
		}
		cur.Cursor, cur.Dead = c.Cursor, c.Dead
		return putConsumer(tx, name, cur)
	})
	return s.fail("set consumer", err)
}

// ClaimConsumer gives holder the consumer's lease if it is free, expired or its own.
func (s *Store) ClaimConsumer(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	ok := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		ok = false
		cur, err := s.consumer(tx, name)
		if err != nil {
			return err
		}
		now := time.Now()
		if cur.Holder != "" && cur.Holder != holder && cur.Lease > unixNanos(now) {
			return nil
		}
		cur.Holder, cur.Lease, ok = holder, unixNanos(now.Add(ttl)), true
		return putConsumer(tx, name, cur)
	})
	if err != nil {
		return false, s.fail("claim consumer", err)
	}
	return ok, nil
}
