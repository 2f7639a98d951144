package node

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// receiptWriter is what the node needs of a store that keeps delivery receipts
// (store.Receipts). The receipter calls it from its one goroutine.
type receiptWriter interface {
	Finish(ctx context.Context, rs ...store.Receipt) error
}

// maxReceiptBatch bounds the receipts of one Finish call, so that one call stays well within
// the store's timeout however many settled while the store was failing.
const maxReceiptBatch = 1000

// receiptBackoff is the first wait after a failed Finish; it doubles up to
// maxReceiptBackoff.
const (
	receiptBackoff    = 50 * time.Millisecond
	maxReceiptBackoff = time.Second
)

// receipter records the terminal receipts of the messages the node settles, many clients'
// at a time, and only then runs what waits for each: the router's answer, the removal of
// the mailbox copy. Until the receipt is durable, either of those would make it lose: a
// router answered never sends the message again, and a mailbox emptied of it never brings
// it back, so a node killed in between would leave the message without a receipt. Kept
// back, they make the message come again after such a kill (the router, unanswered,
// queues it; the mailbox copy stays), and its receipt is recorded then (a duplicate at
// worst, which the store ignores).
//
// Items are queued under their client's outbox lock and passed to Finish in queue order,
// so one client's receipts enter the log in the order its messages settled.
//
// One exception keeps delivery from depending on the store: when Finish fails (the store
// is out of reach or frozen), the routers' answers of the batch are sent at once, and
// only the removals of mailbox copies keep waiting for the receipts, which are retried
// until they are durable. A node killed before the store comes back loses the receipts
// of the messages it delivered directly meanwhile (their mailbox messages come again, and
// with them their receipts); docs/API.md says so. The receipts kept meanwhile are bounded
// by the delivery lease: a node that cannot reach the store stops writing to clients
// once its lease (renewed through the store) runs out.
type receipter struct {
	w       receiptWriter // nil: the store keeps no receipts, and nothing is queued
	failing atomic.Bool   // the last Finish failed: answers do not wait (see above)
	mu      sync.Mutex
	queue   []receiptItem
	signal  chan struct{}
	stopped chan struct{}
}

// receiptItem is a receipt to record and what runs once it is durable. An item without
// a receipt (barrier) runs once every receipt queued before it is. The answer and the
// removal are data rather than closures: one of each per settled message would be two
// allocations on the hot path.
type receiptItem struct {
	r       store.Receipt
	barrier bool
	answer  pendingReply // the router's answer (fn nil: none); sent early when the store fails
	st      *clientState // with gone: whose mailbox copies to remove
	gone    []string     // the mailbox copies to remove
	then    func()       // anything else (nil: nothing)
}

// runItem runs what waits for the item's receipt: the answer (unless sent already), the
// removal, then.
func (n *Node) runItem(it *receiptItem) {
	if it.answer.fn != nil {
		it.answer.send()
	}
	if len(it.gone) > 0 {
		n.remove(it.st, it.gone)
	}
	if it.then != nil {
		it.then()
	}
}

// newReceipter returns the receipter for st: one that records nothing when st keeps no
// receipts.
func newReceipter(st store.Store) *receipter {
	r := &receipter{signal: make(chan struct{}, 1), stopped: make(chan struct{})}
	if rs, ok := st.(store.Receipts); ok {
		r.w = rs
	}
	return r
}

// on reports whether receipts are recorded.
func (r *receipter) on() bool { return r != nil && r.w != nil }

// add queues rec; its answer and the removal of gone (st's mailbox copies) run once rec
// is durable, after every item queued before it (the answer earlier if the store fails:
// see receipter).
func (r *receipter) add(rec store.Receipt, answer pendingReply, st *clientState, gone []string) {
	r.push(receiptItem{r: rec, answer: answer, st: st, gone: gone})
}

// after queues then to run once every receipt queued before it is durable.
func (r *receipter) after(then func()) { r.push(receiptItem{barrier: true, then: then}) }

func (r *receipter) push(it receiptItem) {
	var now pendingReply
	if r.failing.Load() && it.answer.fn != nil {
		now, it.answer = it.answer, pendingReply{}
	}
	r.mu.Lock()
	r.queue = append(r.queue, it)
	r.mu.Unlock()
	if now.fn != nil {
		now.send()
	}
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// answerQueued sends the answers of every queued item now.
func (r *receipter) answerQueued() {
	var now replies
	r.mu.Lock()
	for i := range r.queue {
		now.add(r.queue[i].answer)
		r.queue[i].answer = pendingReply{}
	}
	r.mu.Unlock()
	now.run()
}

// receiptLoop runs the receipter until ctx ends, then makes one last try, without
// retries, at what is queued.
func (n *Node) receiptLoop(ctx context.Context) {
	r := n.receipter
	defer close(r.stopped)
	for {
		select {
		case <-r.signal:
		case <-ctx.Done():
		}
		for n.receiptPass(ctx) {
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// receiptPass records one batch of queued receipts, then runs the batch's items in order.
// It retries a failing Finish with back-off while the node runs; once ctx ends (the node
// stops) it gives up, and the batch's items never run, so nothing is answered or removed
// for a receipt that is not durable. It reports whether it recorded the batch and more
// is queued.
func (n *Node) receiptPass(ctx context.Context) bool {
	r := n.receipter
	r.mu.Lock()
	k, count := 0, 0
	for ; k < len(r.queue) && count < maxReceiptBatch; k++ {
		if !r.queue[k].barrier {
			count++
		}
	}
	work := r.queue[:k:k]
	if k == len(r.queue) {
		r.queue = nil
	} else {
		r.queue = r.queue[k:]
	}
	more := len(r.queue) > 0
	r.mu.Unlock()
	if len(work) == 0 {
		return false
	}
	rs := make([]store.Receipt, 0, count)
	for _, it := range work {
		if it.barrier {
			continue
		}
		if err := it.r.Validate(); err != nil {
			// No store would ever take it, and retrying would hold back every receipt
			// behind it: what waits for it goes ahead without it.
			n.log.Error("a delivery receipt no store records; skipped", "error", err)
			continue
		}
		rs = append(rs, it.r)
	}
	wait := receiptBackoff
	answered := false
	for len(rs) > 0 {
		sctx, cancel := context.WithTimeout(context.Background(), n.cfg.StoreTimeout)
		err := r.w.Finish(sctx, rs...)
		cancel()
		if err == nil {
			break
		}
		n.metrics.receiptFailures.Inc()
		if ctx.Err() != nil {
			// Their routers are unanswered and their mailbox copies stay: each message is
			// delivered again, and its receipt recorded then.
			n.log.Warn("record delivery receipts; the node is stopping, so their messages stay unsettled",
				"receipts", len(rs), "error", err)
			return false
		}
		if !answered {
			// Delivery does not wait for the store: the routers hear now (those of
			// receipts queued later too, until a Finish works), the removals of mailbox
			// copies wait for the receipts.
			answered = true
			r.failing.Store(true)
			for i := range work {
				if a := work[i].answer; a.fn != nil {
					work[i].answer = pendingReply{}
					a.send()
				}
			}
		}
		r.answerQueued() // every time: one queued as the flag was set may have missed it
		n.log.Warn("record delivery receipts; retrying", "receipts", len(rs), "in", wait, "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		wait = min(2*wait, maxReceiptBackoff)
	}
	r.failing.Store(false)
	for i := range work {
		n.runItem(&work[i])
	}
	return more
}

// wantsReceipt reports whether e gets a receipt when it ends here: a direct message whose
// router asked for one, or a mailbox message, whose sender may have (the store records
// that one only if the message was registered).
func (e *entry) wantsReceipt() bool { return !e.direct || e.receipt }

// receiptStatus is the receipt of a message answered s, if s ends it.
func receiptStatus(s wire.Status) (store.ReceiptStatus, bool) {
	switch s {
	case wire.StatusDelivered:
		return store.ReceiptDelivered, true
	case wire.StatusExpired:
		return store.ReceiptExpired, true
	case wire.StatusRejected:
		return store.ReceiptRejected, true
	}
	return "", false
}

// end settles e, which ended on this connection as s, and finishes it if it is finished
// (a connection that closes leaves written entries unfinished). When e gets a receipt,
// its answer and the removal of its mailbox copy are queued behind it; otherwise they go
// to rs and gone, for the caller to run once it releases o.mu. o.mu is held. It reports
// whether e was still to be answered.
func (n *Node) end(o *outbox, e *entry, s wire.Status, detail string, rs *replies, gone *[]string) bool {
	var ids []string
	if e.state == entryFinished {
		n.finish(o, e, &ids)
	}
	f := n.settle(o, e, s, detail)
	status, final := receiptStatus(s)
	if !final || !e.wantsReceipt() || !n.receipter.on() {
		rs.add(f)
		*gone = append(*gone, ids...)
		return f.fn != nil
	}
	st := o.st
	if e.ended {
		// Its receipt is queued already (acknowledged while a spill stored it, say):
		// what is left waits behind that one.
		n.receipter.push(receiptItem{barrier: true, answer: f, st: st, gone: ids})
		return f.fn != nil
	}
	e.ended = true
	n.receipter.add(store.Receipt{
		Client: st.id, ID: e.id, Status: status, Node: n.cfg.ID, Attempts: e.writes,
		Detail: detail, OnlyPending: !e.direct,
	}, f, st, ids)
	return f.fn != nil
}

// dropCopy queues the removal of finished e's mailbox copy (which the spill that stored
// it left to its return), behind e's receipt if it has one. o.mu is held.
func (n *Node) dropCopy(o *outbox, e *entry, gone *[]string) {
	if !e.ended || !e.wantsReceipt() || !n.receipter.on() {
		*gone = append(*gone, e.id)
		return
	}
	n.receipter.push(receiptItem{barrier: true, st: o.st, gone: []string{e.id}})
}

// expiredOnArrival answers a message of a Deliver that had expired before it reached the
// node, with its receipt first if it asked for one. o.mu is held.
func (n *Node) expiredOnArrival(st *clientState, m wire.Msg, reply func(int, wire.Result), i int, rs *replies) {
	const why = "expired before it reached the node"
	p := pendingReply{fn: reply, i: i, r: wire.Result{Status: wire.StatusExpired, Detail: why}}
	if !m.Receipt || !n.receipter.on() {
		rs.add(p)
		return
	}
	n.receipter.add(store.Receipt{Client: st.id, ID: m.ID, Status: store.ReceiptExpired, Node: n.cfg.ID, Detail: why},
		p, nil, nil)
}
