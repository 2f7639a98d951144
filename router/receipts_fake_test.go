package router_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// receiptStore is a store with receipts for the router's tests: the wrapped store's
// mailboxes and presence, and an in-memory receipt log. It embeds the store.Store
// interface (not a concrete store), so that a store that gains receipts of its own never
// makes these methods ambiguous.
type receiptStore struct {
	store.Store
	*fakeReceipts
}

var _ store.Receipts = receiptStore{}

func newReceiptStore(st store.Store) receiptStore {
	return receiptStore{Store: st, fakeReceipts: newFakeReceipts()}
}

// Append registers the messages with Receipt set, as a store with receipts does, then
// appends them; it records every message it was given (the tests look at their Receipt).
func (s receiptStore) Append(ctx context.Context, limit int, msgs []store.Message) ([]store.AppendResult, error) {
	s.register(msgs)
	return s.Store.Append(ctx, limit, msgs)
}

// fakeReceipts implements store.Receipts in memory, under one mutex: the one-receipt rule,
// the log with cursors, waiting reads, expiry sweeps and consumer leases. Retention is not
// implemented (the tests run for seconds).
type fakeReceipts struct {
	mu        sync.Mutex
	appended  []store.Message
	pending   map[string]time.Time // MessageKey → expiry
	terminal  map[string]store.Receipt
	log       []store.Receipt
	seq       int
	grew      chan struct{} // closed and replaced when the log grows
	consumers map[string]store.Consumer
	leases    map[string]fakeLease
	sweeps    []store.SweepOptions // every SweepReceipts call's options
	failing   error                // if set, Finish fails with it
}

type fakeLease struct {
	holder string
	until  time.Time
}

func newFakeReceipts() *fakeReceipts {
	return &fakeReceipts{pending: map[string]time.Time{}, terminal: map[string]store.Receipt{},
		grew: make(chan struct{}), consumers: map[string]store.Consumer{}, leases: map[string]fakeLease{}}
}

func (f *fakeReceipts) register(msgs []store.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for _, m := range msgs {
		f.appended = append(f.appended, m)
		k := store.MessageKey(m.To, m.ID)
		if _, done := f.terminal[k]; m.Receipt && !done {
			f.pending[k] = now.Add(m.TTL)
		}
	}
}

// Appended is every message Append was given, in order.
func (f *fakeReceipts) Appended() []store.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.Message(nil), f.appended...)
}

// Log is the receipt log.
func (f *fakeReceipts) Log() []store.Receipt {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.Receipt(nil), f.log...)
}

func (f *fakeReceipts) Finish(ctx context.Context, rs ...store.Receipt) error {
	for _, r := range rs {
		if err := r.Validate(); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing != nil {
		return f.failing
	}
	for _, r := range rs {
		f.finishLocked(r)
	}
	return nil
}

// failFinish makes Finish fail with err (nil: succeed again).
func (f *fakeReceipts) failFinish(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = err
}

// Sweeps is every SweepReceipts call's options, in order.
func (f *fakeReceipts) Sweeps() []store.SweepOptions {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.SweepOptions(nil), f.sweeps...)
}

func (f *fakeReceipts) finishLocked(r store.Receipt) {
	k := store.MessageKey(r.Client, r.ID)
	if _, done := f.terminal[k]; done {
		return
	}
	if _, reg := f.pending[k]; r.OnlyPending && !reg {
		return
	}
	delete(f.pending, k)
	f.seq++
	r.Cursor, r.At, r.OnlyPending = fmt.Sprintf("%012d", f.seq), time.Now().UTC(), false
	f.terminal[k] = r
	f.log = append(f.log, r)
	close(f.grew)
	f.grew = make(chan struct{})
}

func (f *fakeReceipts) SweepReceipts(ctx context.Context, o store.SweepOptions) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sweeps = append(f.sweeps, o)
	n := 0
	now := time.Now()
	for k, exp := range f.pending {
		if n == o.Max {
			break
		}
		if now.Sub(exp) > o.Grace {
			client, id, _ := cutKey(k)
			f.finishLocked(store.Receipt{Client: client, ID: id, Status: store.ReceiptExpired})
			n++
		}
	}
	return n, nil
}

func cutKey(k string) (client, id string, ok bool) {
	for i := range len(k) {
		if k[i] == 0 {
			return k[:i], k[i+1:], true
		}
	}
	return k, "", false
}

func (f *fakeReceipts) ReadReceipts(ctx context.Context, after string, n int, wait time.Duration) ([]store.Receipt, error) {
	var timer <-chan time.Time
	for {
		f.mu.Lock()
		var out []store.Receipt
		for _, r := range f.log {
			if r.Cursor > after && len(out) < min(n, store.MaxReceiptsRead) {
				out = append(out, r)
			}
		}
		grew := f.grew
		f.mu.Unlock()
		if len(out) > 0 || wait <= 0 {
			return out, nil
		}
		if timer == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-grew:
		case <-timer:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (f *fakeReceipts) ReceiptsTail(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.log) == 0 {
		return "", nil
	}
	return f.log[len(f.log)-1].Cursor, nil
}

func (f *fakeReceipts) MessageState(ctx context.Context, client, id string) (store.MessageState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := store.MessageKey(client, id)
	if r, ok := f.terminal[k]; ok {
		return store.MessageState{Client: client, ID: id, Receipt: r}, nil
	}
	if exp, ok := f.pending[k]; ok {
		return store.MessageState{Client: client, ID: id, Pending: true, TTL: time.Until(exp)}, nil
	}
	return store.MessageState{}, fmt.Errorf("message %q for %q: %w", id, client, store.ErrNoMessage)
}

func (f *fakeReceipts) Consumer(ctx context.Context, name string) (store.Consumer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.consumers[name], nil
}

func (f *fakeReceipts) SetConsumer(ctx context.Context, name, holder string, c store.Consumer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.leases[name]; l.holder != holder || time.Now().After(l.until) {
		return fmt.Errorf("consumer %s: %w", name, store.ErrNotOwner)
	}
	f.consumers[name] = c
	return nil
}

func (f *fakeReceipts) ClaimConsumer(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if l := f.leases[name]; l.holder != "" && l.holder != holder && now.Before(l.until) {
		return false, nil
	}
	f.leases[name] = fakeLease{holder: holder, until: now.Add(ttl)}
	return true, nil
}
