package node

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// The outbox is the node's sequencer for one client connection: every directed message
// for the client passes through it, from routers (direct) and from the client's mailbox,
// and leaves in one order. The rules, and why they keep the cluster's promises:
//
//   - Messages are written in order and never written twice on one connection (MQTT
//     resends only on a new connection, [MQTT-4.4.0-1]); up to a window of them are in
//     flight at once, each acknowledged by a PUBACK for its own packet id only.
//   - While the mailbox may hold messages the outbox has not read (at session start, and
//     after every mailbox notice), only mailbox messages are written: a message answered
//     `queued` is never overtaken by one sent directly after that answer. The mailbox's
//     order decides for everything in it, including the outbox's own copies.
//   - A direct message still unacknowledged after its MaxWait is put in the mailbox
//     (spilled, with every unanswered message before it, so the mailbox keeps the order)
//     and answered `queued`; it stays in flight, and its PUBACK removes the mailbox copy.
//   - When the connection ends, every unanswered direct message is spilled the same way.
//   - Nothing is written while the node's delivery lease has lapsed, while the node is
//     not live, before the session's presence is confirmed under the live epoch, before
//     the client subscribed to its inbox, or once the session was taken over elsewhere.
//   - When the store keeps delivery receipts (store.Receipts), a message that ends here
//     (acknowledged, written at QoS 0, expired, or too large for the client) has its
//     terminal receipt recorded durably before its router is answered and before its
//     mailbox copy is removed (see receipter): a direct message if its router asked for
//     one, a mailbox message always, for the store to keep only if its sender asked. A
//     node killed in between leaves the message to be delivered again, never without a
//     receipt. The outbox's spills ask the store to register what they store.

// entryState is where a directed message stands on one connection.
type entryState uint8

const (
	entryQueued   entryState = iota // waiting to be written
	entryWritten                    // written (QoS 1: waiting for its PUBACK)
	entryFinished                   // acknowledged, or written at QoS 0, or given up
	entryDropped                    // left memory: the mailbox holds it and will bring it back
)

// entry is one directed message on its way to one client connection.
type entry struct {
	id      string
	topic   string
	payload []byte
	qos     byte
	expires time.Time // on this node's monotonic clock
	arrived time.Time

	seq   uint64 // the mailbox position of its copy, once known
	inBox bool   // a copy is (or may be) in the mailbox: remove it once acknowledged

	direct   bool
	receipt  bool                   // direct: its router asked for a delivery receipt (unknown for mailbox messages)
	ended    bool                   // its receipt is queued (see Node.end)
	writes   int                    // times written to the client on this connection
	reply    func(int, wire.Result) // the router waiting for it (message replyIdx of its Deliver); nil once answered
	replyIdx int
	answerBy time.Time // when an unanswered direct message is spilled
	spilling bool

	state    entryState
	pid      uint16
	fromBoxQ bool // taken from boxQ (not directQ) for its last write
	inBoxQ   bool // in boxQ: placed by a mailbox read
	high     bool // read from the mailbox's high-priority lane

	removePending bool // its copy was removed while a mailbox read ran: forget it after that read
}

// answer settles a direct entry's reply once; the caller sends the returned reply
// outside the outbox lock (a zero pendingReply when it was answered already).
func (e *entry) answer(s wire.Status, detail string) pendingReply {
	r := e.reply
	if r == nil {
		return pendingReply{}
	}
	e.reply = nil
	return pendingReply{fn: r, i: e.replyIdx, r: wire.Result{Status: s, Detail: detail}}
}

// pendingReply is an answer to send once the outbox lock is released.
type pendingReply struct {
	fn func(int, wire.Result)
	i  int
	r  wire.Result
}

// outbox holds one connection's directed messages. Its fields are guarded by mu.
type outbox struct {
	st *clientState
	mu sync.Mutex

	boxQ     []*entry          // from the mailbox (or ours, met in it), unwritten, in mailbox order
	directQ  []*entry          // from routers, unwritten, in arrival order
	waiting  []*entry          // direct entries not answered yet, in arrival order (may hold answered ones)
	byID     map[string]*entry // every entry not finished, and finished ones whose copy is being removed
	window   int               // directed QoS 1 messages in flight
	cursor   uint64            // the highest mailbox seq read
	hiCursor uint64            // the highest seq read from the mailbox's high-priority lane
	// hiMore: the last read of the high lane was full, so it may hold more: no normal
	// mailbox message is written until a read finds its end.
	hiMore bool
	// hiReadGen is the askGen under which the high lane was last read to its end: it is
	// read again, even behind a long normal backlog, once a notice makes askGen differ.
	hiReadGen uint64
	askGen    uint64 // mailbox reads asked for
	readGen   uint64 // the askGen the last complete read started under
	reading   bool   // a mailbox read is running
	sending   bool   // the sender goroutine runs
	closed    bool
	timer     *time.Timer // the next spill
	pending   int64       // bytes of unanswered direct payloads, counted against the node's budget

	pids pidTable
}

func newOutbox(st *clientState) *outbox {
	// askGen 1: a new session reads its mailbox before anything is sent directly.
	return &outbox{st: st, byID: map[string]*entry{}, askGen: 1}
}

// mailboxPending reports whether the mailbox may hold messages the outbox has not read.
func (o *outbox) mailboxPending() bool { return o.askGen != o.readGen }

// replies are answers collected under the lock, sent after it.
type replies []pendingReply

func (r *replies) add(p pendingReply) {
	if p.fn != nil {
		*r = append(*r, p)
	}
}

func (r replies) run() {
	for _, p := range r {
		p.send()
	}
}

// send sends the reply; fn is not nil.
func (p pendingReply) send() { p.fn(p.i, p.r) }

// accept takes the messages of one Deliver, all or none. It returns false when the
// connection cannot take them (closed, taken over, or over its limits).
func (n *Node) accept(st *clientState, d wire.Deliver, reply func(int, wire.Result)) bool {
	o := st.ob
	maxWait := n.cfg.MaxWait
	if d.MaxWait > 0 {
		maxWait = time.Duration(d.MaxWait) * time.Millisecond
	}
	var bytes int64
	for _, m := range d.Msgs {
		if m.TTL > 0 {
			bytes += int64(len(m.Payload) + len(m.Topic) + len(m.ID))
		}
	}
	now := time.Now()
	var rs replies
	o.mu.Lock()
	if o.closed || st.revoked.Load() || len(o.directQ)+len(d.Msgs) > n.cfg.OutboxLimit {
		o.mu.Unlock()
		return false
	}
	if n.queuedBytes.Add(bytes) > n.cfg.MaxQueuedBytes {
		n.queuedBytes.Add(-bytes)
		o.mu.Unlock()
		return false
	}
	o.pending += bytes
	for i, m := range d.Msgs {
		if m.TTL <= 0 {
			n.expiredOnArrival(st, m, reply, i, &rs)
			continue
		}
		e := &entry{
			id: m.ID, topic: m.Topic, payload: m.Payload, qos: m.QoS,
			expires: now.Add(time.Duration(m.TTL) * time.Millisecond), arrived: now,
			direct: true, receipt: m.Receipt, answerBy: now.Add(maxWait),
			reply: reply, replyIdx: i,
		}
		o.directQ = append(o.directQ, e)
		o.waiting = append(o.waiting, e)
		o.byID[e.id] = e
	}
	n.armSpill(st)
	o.mu.Unlock()
	rs.run()
	n.wake(st)
	return true
}

// askMailbox makes the outbox read the client's mailbox before it sends anything that
// arrives from now on.
func (n *Node) askMailbox(st *clientState) {
	o := st.ob
	o.mu.Lock()
	o.askGen++
	o.mu.Unlock()
	n.wake(st)
}

// mergeHigh adds messages read from the mailbox's high-priority lane (Seq > hiCursor,
// oldest first) behind the unwritten high-priority messages read before and ahead of
// every unwritten normal one: a client's queued high-priority messages are written
// before its queued normal ones, and in their own order. gen is the askGen the read
// started under, asked how many it asked for. It runs before mergeMailbox of the same
// read.
func (n *Node) mergeHigh(o *outbox, msgs []store.Message, gen uint64, asked int) {
	o.hiMore = len(msgs) >= asked
	if !o.hiMore {
		o.hiReadGen = gen
	}
	if len(msgs) == 0 {
		return
	}
	now := time.Now()
	var front []*entry
	for _, m := range msgs {
		if m.Seq > o.hiCursor {
			o.hiCursor = m.Seq
		}
		if e, ok := o.byID[m.ID]; ok {
			e.inBox = true // ours already (read before, or in flight): its copy is in the lane
			if e.seq == 0 {
				e.seq = m.Seq
			}
			continue
		}
		e := &entry{
			id: m.ID, topic: m.Topic, payload: m.Payload, qos: m.QoS,
			expires: now.Add(m.TTL), arrived: now, seq: m.Seq, inBox: true, inBoxQ: true, high: true,
		}
		front = append(front, e)
		o.byID[e.id] = e
	}
	o.boxQ = slices.Insert(o.boxQ, o.highQueued(), front...)
}

// highQueued counts the unwritten high-priority entries, which lead boxQ: new ones go
// behind them.
func (o *outbox) highQueued() int {
	k := 0
	for k < len(o.boxQ) && o.boxQ[k].high {
		k++
	}
	return k
}

// mergeMailbox adds messages read from the mailbox (Seq > the cursor the read started
// from, oldest first). asked is how many the read asked for: fewer means it reached the
// end, so the mailbox holds nothing unread that was there when the read began under gen.
func (n *Node) mergeMailbox(o *outbox, msgs []store.Message, gen uint64, asked int, highDone bool) {
	now := time.Now()
	// Our own unwritten direct entries met in the mailbox move to boxQ at their mailbox
	// position; the rest of directQ keeps its order behind.
	moved := map[*entry]bool{}
	for _, m := range msgs {
		if m.Seq > o.cursor {
			o.cursor = m.Seq
		}
		if e, ok := o.byID[m.ID]; ok {
			e.inBox = true
			if e.seq == 0 {
				e.seq = m.Seq
			}
			if e.state == entryQueued && e.direct && !e.inBoxQ && !moved[e] {
				moved[e] = true
				e.inBoxQ = true
				o.boxQ = append(o.boxQ, e)
			}
			continue
		}
		e := &entry{
			id: m.ID, topic: m.Topic, payload: m.Payload, qos: m.QoS,
			expires: now.Add(m.TTL), arrived: now, seq: m.Seq, inBox: true, inBoxQ: true,
		}
		o.boxQ = append(o.boxQ, e)
		o.byID[e.id] = e
	}
	if len(moved) > 0 {
		keep := o.directQ[:0]
		for _, e := range o.directQ {
			if !moved[e] {
				keep = append(keep, e)
			}
		}
		clear(o.directQ[len(keep):])
		o.directQ = keep
	}
	if len(msgs) < asked && highDone && o.askGen == gen {
		o.readGen = gen
	}
}

// readDone ends a mailbox read (of either lane or both): copies removed while it ran may
// have been in its answer (skipped by the merges); no read that could still return them
// is left.
func (n *Node) readDone(o *outbox) {
	for id, e := range o.byID {
		if e.removePending {
			delete(o.byID, id)
		}
	}
}

// takeWritable removes from the queues the entries to write now, in order, up to the
// window; expired ones are ended instead (see end).
func (n *Node) takeWritable(o *outbox, max int, rs *replies, gone *[]string) []*entry {
	var out []*entry
	now := time.Now()
	take := func(q []*entry, fromBox bool) []*entry {
		i := 0
		for ; i < len(q); i++ {
			e := q[i]
			if e.state != entryQueued {
				continue // finished meanwhile (answered by a spill failure, say)
			}
			if !now.Before(e.expires) {
				e.state = entryFinished
				n.end(o, e, wire.StatusExpired, "expired before delivery", rs, gone)
				continue
			}
			if e.qos > 0 && o.window >= max {
				break
			}
			if fromBox && !e.high && o.hiMore {
				break // the high lane may hold more: read it before any normal message
			}
			if e.qos > 0 {
				o.window++
			}
			e.state = entryWritten
			e.writes++ // now, not after the write: its PUBACK may come before the writer returns
			e.fromBoxQ = fromBox
			out = append(out, e)
		}
		clear(q[:i])
		if i == len(q) {
			return q[:0] // keep the array: the next message would allocate a new one
		}
		return q[i:]
	}
	o.boxQ = take(o.boxQ, true)
	if !o.mailboxPending() && !o.reading && len(o.boxQ) == 0 {
		o.directQ = take(o.directQ, false)
	}
	return out
}

// finish forgets a finished entry, or keeps it until its mailbox copy is removed (so a
// mailbox read meanwhile does not send it again): gone collects the ids to remove.
func (n *Node) finish(o *outbox, e *entry, gone *[]string) {
	switch {
	case e.spilling:
		// The spill storing its copy removes the copy when it returns.
	case e.inBox:
		*gone = append(*gone, e.id)
	case o.byID[e.id] == e:
		delete(o.byID, e.id)
	}
}

// acked settles the directed message written under packet id pid. It reports whether pid
// was one.
func (n *Node) acked(st *clientState, pid uint16, reason byte) bool {
	o := st.ob
	var rs replies
	var gone []string
	o.mu.Lock()
	e, ok := o.pids.directed[pid]
	if !ok {
		o.mu.Unlock()
		return false
	}
	delete(o.pids.directed, pid)
	o.window--
	e.state = entryFinished
	detail := ""
	if reason >= 0x80 {
		// Still delivered: the client has it, and MQTT does not resend it.
		detail = fmt.Sprintf("the client acknowledged it with error reason code 0x%02x", reason)
	}
	if n.end(o, e, wire.StatusDelivered, detail, &rs, &gone) {
		n.metrics.deliverySeconds.Observe(time.Since(e.arrived).Seconds())
		n.metrics.countDelivery("direct", wire.StatusDelivered)
	} else if !e.direct {
		n.metrics.countDelivery("drain", wire.StatusDelivered)
	}
	o.mu.Unlock()
	rs.run()
	n.remove(st, gone)
	n.wake(st)
	return true
}

// removed is called once the mailbox copies of ids are deleted: the outbox may forget
// them, unless a mailbox read that started before the deletion is still running (it may
// return them; mergeMailbox forgets them after it).
func (n *Node) removed(st *clientState, ids []string) {
	o := st.ob
	o.mu.Lock()
	for _, id := range ids {
		e, ok := o.byID[id]
		switch {
		case !ok || e.state != entryFinished:
		case o.reading:
			e.removePending = true
		default:
			delete(o.byID, id)
		}
	}
	o.mu.Unlock()
}

// releaseBytes gives an answered direct entry's bytes back to the node's budget.
func (n *Node) releaseBytes(o *outbox, e *entry) {
	b := int64(len(e.payload) + len(e.topic) + len(e.id))
	o.pending -= b
	n.queuedBytes.Add(-b)
}
