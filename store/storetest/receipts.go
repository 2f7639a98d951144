package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

func receiptsOf(t *testing.T, st store.Store) store.Receipts {
	t.Helper()
	r, ok := st.(store.Receipts)
	if !ok {
		t.Fatalf("%T does not provide store.Receipts", st)
	}
	return r
}

// appendWithReceipt appends messages with Receipt set, each to its own client's mailbox.
func appendWithReceipt(t *testing.T, st store.Store, ttl time.Duration, msgs ...store.Message) {
	t.Helper()
	for i := range msgs {
		msgs[i].Receipt = true
		msgs[i].TTL = ttl
	}
	res, err := st.Append(ctxT(t), 100, msgs)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("append %s: %v", msgs[i].ID, r.Err)
		}
	}
}

// readAll reads the whole log from the oldest kept.
func readAll(t *testing.T, rs store.Receipts) []store.Receipt {
	t.Helper()
	var all []store.Receipt
	after := ""
	for {
		page, err := rs.ReadReceipts(ctxT(t), after, store.MaxReceiptsRead, 0)
		if err != nil {
			t.Fatalf("read receipts after %q: %v", after, err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].Cursor
	}
}

func describe(rs []store.Receipt) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = fmt.Sprintf("%s/%s:%s", r.Client, r.ID, r.Status)
	}
	return out
}

// testReceiptOncePerMessage: the first Finish of a message is its terminal receipt; later
// ones (a second status, a retry, a registration after it) change nothing.
func testReceiptOncePerMessage(t *testing.T, st store.Store) {
	rs := receiptsOf(t, st)
	ctx := ctxT(t)
	appendWithReceipt(t, st, time.Hour, NewMessage("alice", "m1"))
	if err := rs.Finish(ctx, store.Receipt{Client: "alice", ID: "m1", Status: store.ReceiptDelivered, Node: "node-1", Attempts: 1, OnlyPending: true}); err != nil {
		t.Fatal(err)
	}
	// A retry, another status, and a forced one: none is recorded.
	for _, r := range []store.Receipt{
		{Client: "alice", ID: "m1", Status: store.ReceiptDelivered, Node: "node-1", Attempts: 1, OnlyPending: true},
		{Client: "alice", ID: "m1", Status: store.ReceiptExpired},
		{Client: "alice", ID: "m1", Status: store.ReceiptRejected, Detail: "late"},
	} {
		if err := rs.Finish(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// A registration after the terminal receipt (a node stored a copy while the PUBACK was
	// being recorded) changes nothing either, and the sweep never expires it.
	appendWithReceipt(t, st, time.Millisecond, NewMessage("alice", "m1"))
	time.Sleep(5 * time.Millisecond) // the registration's TTL must pass: waiting on a clock is the point
	if n, err := rs.SweepReceipts(ctx, store.SweepOptions{Max: 100}); err != nil || n != 0 {
		t.Fatalf("sweep after the terminal receipt: %d expired, %v; want 0", n, err)
	}
	all := readAll(t, rs)
	if len(all) != 1 {
		t.Fatalf("log holds %v, want one delivered receipt", describe(all))
	}
	r := all[0]
	if r.Client != "alice" || r.ID != "m1" || r.Status != store.ReceiptDelivered || r.Node != "node-1" || r.Attempts != 1 {
		t.Fatalf("receipt %+v", r)
	}
	if r.Cursor == "" || r.At.IsZero() || time.Since(r.At) > time.Minute || time.Until(r.At) > time.Minute {
		t.Fatalf("receipt's cursor %q or time %v not set by the store", r.Cursor, r.At)
	}
	s, err := rs.MessageState(ctx, "alice", "m1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Pending || s.Receipt.Status != store.ReceiptDelivered || s.Receipt.Cursor != r.Cursor || s.Receipt.Node != "node-1" {
		t.Fatalf("state %+v, want the delivered receipt %+v", s, r)
	}
}

// testReceiptOnlyPending: a receipt with OnlyPending is recorded for a registered message
// only; one without it is recorded either way.
func testReceiptOnlyPending(t *testing.T, st store.Store) {
	rs := receiptsOf(t, st)
	ctx := ctxT(t)
	plain := NewMessage("bob", "plain") // no receipt asked
	if _, err := st.Append(ctx, 100, []store.Message{plain}); err != nil {
		t.Fatal(err)
	}
	err := rs.Finish(ctx,
		store.Receipt{Client: "bob", ID: "plain", Status: store.ReceiptDelivered, OnlyPending: true},
		store.Receipt{Client: "bob", ID: "direct", Status: store.ReceiptDelivered, Node: "node-2", Attempts: 1},
	)
	if err != nil {
		t.Fatal(err)
	}
	got := describe(readAll(t, rs))
	if want := []string{"bob/direct:delivered"}; !slices.Equal(got, want) {
		t.Fatalf("log %v, want %v", got, want)
	}
	if _, err := rs.MessageState(ctx, "bob", "plain"); !errors.Is(err, store.ErrNoMessage) {
		t.Fatalf("state of a message without a receipt: %v, want ErrNoMessage", err)
	}
	if _, err := rs.MessageState(ctx, "nobody", "x"); !errors.Is(err, store.ErrNoMessage) {
		t.Fatalf("state of an unknown message: %v, want ErrNoMessage", err)
	}
}

// testReceiptPendingState: a registered message is pending, with its TTL, until it ends.
func testReceiptPendingState(t *testing.T, st store.Store) {
	rs := receiptsOf(t, st)
	ctx := ctxT(t)
	appendWithReceipt(t, st, time.Hour, NewMessage("carol", "c1"))
	s, err := rs.MessageState(ctx, "carol", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Pending || s.TTL <= 59*time.Minute || s.TTL > time.Hour || s.Client != "carol" || s.ID != "c1" {
		t.Fatalf("state %+v, want pending with about an hour left", s)
	}
	// The same id to another client is another message.
	if _, err := rs.MessageState(ctx, "dave", "c1"); !errors.Is(err, store.ErrNoMessage) {
		t.Fatalf("state of c1 for dave: %v, want ErrNoMessage", err)
	}
	// A full mailbox still registers the message (Append's contract): the caller ends it.
	res, err := st.Append(ctx, 1, []store.Message{{ID: "c2", To: "carol", Topic: "t", TTL: time.Hour, Receipt: true}})
	if err != nil || !errors.Is(res[0].Err, store.ErrMailboxFull) {
		t.Fatalf("append to a full mailbox: %v %v", res, err)
	}
	if err := rs.Finish(ctx, store.Receipt{Client: "carol", ID: "c2", Status: store.ReceiptRejected, Detail: "mailbox full"}); err != nil {
		t.Fatal(err)
	}
	s, err = rs.MessageState(ctx, "carol", "c2")
	if err != nil || s.Pending || s.Receipt.Status != store.ReceiptRejected || s.Receipt.Detail != "mailbox full" {
		t.Fatalf("state of the rejected message: %+v, %v", s, err)
	}
}

// testReceiptSweepExpires: registered messages past their expiry and the grace get one
// expired receipt each, oldest expiry first; those within the grace do not yet.
func testReceiptSweepExpires(t *testing.T, st store.Store) {
	rs := receiptsOf(t, st)
	ctx := ctxT(t)
	appendWithReceipt(t, st, 10*time.Millisecond, NewMessage("erin", "e1"), NewMessage("erin", "e2"), NewMessage("frank", "f1"))
	appendWithReceipt(t, st, time.Hour, NewMessage("erin", "e3"))
	time.Sleep(30 * time.Millisecond) // their TTLs must pass on the store's clock
	if n, err := rs.SweepReceipts(ctx, store.SweepOptions{Grace: time.Hour, Max: 100}); err != nil || n != 0 {
		t.Fatalf("sweep within the grace: %d, %v; want 0", n, err)
	}
	n, err := rs.SweepReceipts(ctx, store.SweepOptions{Max: 2})
	if err != nil || n != 2 {
		t.Fatalf("first sweep: %d, %v; want 2 (its max)", n, err)
	}
	n, err = rs.SweepReceipts(ctx, store.SweepOptions{Max: 100})
	if err != nil || n != 1 {
		t.Fatalf("second sweep: %d, %v; want the third", n, err)
	}
	all := readAll(t, rs)
	got := describe(all)
	slices.Sort(got)
	if want := []string{"erin/e1:expired", "erin/e2:expired", "frank/f1:expired"}; !slices.Equal(got, want) {
		t.Fatalf("log %v, want %v", got, want)
	}
	// Expired once: a late acknowledgement records nothing.
	if err := rs.Finish(ctx, store.Receipt{Client: "erin", ID: "e1", Status: store.ReceiptDelivered, OnlyPending: true}); err != nil {
		t.Fatal(err)
	}
	if n := len(readAll(t, rs)); n != 3 {
		t.Fatalf("log holds %d receipts after a late acknowledgement, want 3", n)
	}
	if s, err := rs.MessageState(ctx, "erin", "e3"); err != nil || !s.Pending {
		t.Fatalf("the unexpired message: %+v, %v; want pending", s, err)
	}
}

// testReceiptsLogOrderAndCursor: the log keeps Finish order, reads resume after a cursor,
// the tail names the newest, and a wait returns a receipt recorded meanwhile.
func testReceiptsLogOrderAndCursor(t *testing.T, st store.Store) {
	rs := receiptsOf(t, st)
	ctx := ctxT(t)
	if tail, err := rs.ReceiptsTail(ctx); err != nil || tail != "" {
		t.Fatalf("tail of an empty log: %q, %v", tail, err)
	}
	var batch []store.Receipt
	var want []string
	for i := range 25 {
		r := store.Receipt{Client: fmt.Sprintf("c%d", i%3), ID: fmt.Sprintf("m%02d", i), Status: store.ReceiptDelivered, Node: "n", Attempts: 1}
		batch = append(batch, r)
		want = append(want, fmt.Sprintf("%s/%s:delivered", r.Client, r.ID))
	}
	if err := rs.Finish(ctx, batch[:10]...); err != nil {
		t.Fatal(err)
	}
	if err := rs.Finish(ctx, batch[10:]...); err != nil {
		t.Fatal(err)
	}
	all := readAll(t, rs)
	if got := describe(all); !slices.Equal(got, want) {
		t.Fatalf("log %v, want %v", got, want)
	}
	page, err := rs.ReadReceipts(ctx, all[9].Cursor, 5, 0)
	if err != nil || !slices.Equal(describe(page), want[10:15]) {
		t.Fatalf("read after the 10th: %v, %v; want %v", describe(page), err, want[10:15])
	}
	tail, err := rs.ReceiptsTail(ctx)
	if err != nil || tail != all[24].Cursor {
		t.Fatalf("tail %q, %v; want %q", tail, err, all[24].Cursor)
	}
	if page, err := rs.ReadReceipts(ctx, tail, 10, 0); err != nil || len(page) != 0 {
		t.Fatalf("read after the tail without waiting: %v, %v", describe(page), err)
	}
	// A reader waiting after the tail gets a receipt recorded while it waits.
	var wg sync.WaitGroup
	var waited []store.Receipt
	var werr error
	started := make(chan struct{})
	wg.Go(func() {
		close(started)
		waited, werr = rs.ReadReceipts(ctx, tail, 10, 20*time.Second)
	})
	<-started
	if err := rs.Finish(ctx, store.Receipt{Client: "c9", ID: "late", Status: store.ReceiptDropped}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if werr != nil || !slices.Equal(describe(waited), []string{"c9/late:dropped"}) {
		t.Fatalf("waiting read: %v, %v", describe(waited), werr)
	}
}

// testReceiptsRetention: a sweep with a retention forgets old terminal states and log
// entries, but not log entries after Keep.
func testReceiptsRetention(t *testing.T, st store.Store) {
	rs := receiptsOf(t, st)
	ctx := ctxT(t)
	for i := range 4 {
		if err := rs.Finish(ctx, store.Receipt{Client: "g", ID: fmt.Sprintf("old%d", i), Status: store.ReceiptDelivered}); err != nil {
			t.Fatal(err)
		}
	}
	old := readAll(t, rs)
	time.Sleep(time.Second) // the old receipts must age past the retention
	if err := rs.Finish(ctx, store.Receipt{Client: "g", ID: "new", Status: store.ReceiptDelivered}); err != nil {
		t.Fatal(err)
	}
	// A consumer that has read nothing yet keeps the whole log.
	if _, err := rs.SweepReceipts(ctx, store.SweepOptions{Max: 10, Retention: 500 * time.Millisecond, KeepLog: true}); err != nil {
		t.Fatal(err)
	}
	if n := len(readAll(t, rs)); n != 5 {
		t.Fatalf("log holds %d receipts after a sweep that keeps the log, want 5", n)
	}
	// A consumer has read only the first two old ones: the log keeps what follows.
	if _, err := rs.SweepReceipts(ctx, store.SweepOptions{Max: 10, Retention: 500 * time.Millisecond, Keep: old[1].Cursor}); err != nil {
		t.Fatal(err)
	}
	// What follows the consumer's cursor stays; the cursor's own receipt may.
	got := describe(readAll(t, rs))
	want := []string{"g/old2:delivered", "g/old3:delivered", "g/new:delivered"}
	if len(got) < 3 || len(got) > 4 || !slices.Equal(got[len(got)-3:], want) {
		t.Fatalf("log after a sweep keeping after %q: %v, want %v (and perhaps old1 before)", old[1].Cursor, got, want)
	}
	if _, err := rs.SweepReceipts(ctx, store.SweepOptions{Max: 10, Retention: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if got := describe(readAll(t, rs)); !slices.Equal(got, []string{"g/new:delivered"}) {
		t.Fatalf("log after a sweep without a consumer: %v, want the new one only", got)
	}
	if _, err := rs.MessageState(ctx, "g", "old0"); !errors.Is(err, store.ErrNoMessage) {
		t.Fatalf("state of a forgotten message: %v, want ErrNoMessage", err)
	}
	if s, err := rs.MessageState(ctx, "g", "new"); err != nil || s.Receipt.Status != store.ReceiptDelivered {
		t.Fatalf("state of the new one: %+v, %v", s, err)
	}
	// Garbage is no cursor.
	if _, err := rs.ReadReceipts(ctx, "not a cursor", 10, 0); !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("read after garbage: %v, want ErrBadCursor", err)
	}
	// A cursor the log no longer holds reads from the oldest kept.
	page, err := rs.ReadReceipts(ctx, old[0].Cursor, 10, 0)
	if err != nil || !slices.Equal(describe(page), []string{"g/new:delivered"}) {
		t.Fatalf("read after a trimmed cursor: %v, %v", describe(page), err)
	}
}

// testReceiptConsumers: one holder at a time; only it stores the consumer's state.
func testReceiptConsumers(t *testing.T, st store.Store) {
	rs := receiptsOf(t, st)
	ctx := ctxT(t)
	if c, err := rs.Consumer(ctx, "webhook"); err != nil || c != (store.Consumer{}) {
		t.Fatalf("a new consumer: %+v, %v", c, err)
	}
	if ok, err := rs.ClaimConsumer(ctx, "webhook", "router-1", time.Minute); err != nil || !ok {
		t.Fatalf("first claim: %v, %v", ok, err)
	}
	if ok, err := rs.ClaimConsumer(ctx, "webhook", "router-2", time.Minute); err != nil || ok {
		t.Fatalf("claim of a held consumer: %v, %v", ok, err)
	}
	if ok, err := rs.ClaimConsumer(ctx, "webhook", "router-1", time.Minute); err != nil || !ok {
		t.Fatalf("renewal by the holder: %v, %v", ok, err)
	}
	if err := rs.SetConsumer(ctx, "webhook", "router-2", store.Consumer{Cursor: "x"}); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("set by another: %v, want ErrNotOwner", err)
	}
	want := store.Consumer{Cursor: "c-1", Dead: 3}
	if err := rs.SetConsumer(ctx, "webhook", "router-1", want); err != nil {
		t.Fatal(err)
	}
	if c, err := rs.Consumer(ctx, "webhook"); err != nil || c != want {
		t.Fatalf("consumer %+v, %v; want %+v", c, err, want)
	}
	// A lease that ran out goes to the next claimant, which keeps the state.
	if ok, err := rs.ClaimConsumer(ctx, "other", "router-1", 10*time.Millisecond); err != nil || !ok {
		t.Fatalf("claim of another consumer: %v, %v", ok, err)
	}
	time.Sleep(30 * time.Millisecond) // the lease must run out on the store's clock
	if ok, err := rs.ClaimConsumer(ctx, "other", "router-2", time.Minute); err != nil || !ok {
		t.Fatalf("claim after the lease ran out: %v, %v", ok, err)
	}
	if c, err := rs.Consumer(ctx, "webhook"); err != nil || c != want {
		t.Fatalf("consumers are separate: %+v, %v", c, err)
	}
}

// testReceiptsRefuseBadInput: bad receipts are refused, nothing recorded.
func testReceiptsRefuseBadInput(t *testing.T, st store.Store) {
	rs := receiptsOf(t, st)
	ctx := ctxT(t)
	for _, r := range []store.Receipt{
		{ID: "x", Status: store.ReceiptDelivered},
		{Client: "a", Status: store.ReceiptDelivered},
		{Client: "a", ID: "x", Status: "lost"},
		{Client: "a\x00b", ID: "x", Status: store.ReceiptDelivered},
		{Client: "a", ID: "x", Status: store.ReceiptRejected, Detail: string(make([]byte, store.MaxReceiptDetail+1))},
	} {
		good := store.Receipt{Client: "a", ID: "good", Status: store.ReceiptDelivered}
		if err := rs.Finish(ctx, good, r); err == nil {
			t.Fatalf("Finish took %+v", r)
		}
	}
	if all := readAll(t, rs); len(all) != 0 {
		t.Fatalf("a refused call recorded %v", describe(all))
	}
}
