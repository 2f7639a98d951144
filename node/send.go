package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// wake starts the connection's sender unless it is running or has nothing to do. The
// sender runs while there is something it may do, and exits when there is nothing:
// whatever makes work possible again (a message, an acknowledgement, a notice, readiness,
// a renewed lease, a new epoch) wakes it.
func (n *Node) wake(st *clientState) {
	o := st.ob
	o.mu.Lock()
	if o.sending || o.closed || o.idle() {
		// idle: most wakes come from PUBACKs of clients with nothing more queued, and a
		// sender started for them would find nothing and exit (a goroutine per message).
		o.mu.Unlock()
		return
	}
	o.sending = true
	o.mu.Unlock()
	n.sendWG.Add(1)
	go func() {
		defer n.sendWG.Done()
		n.sendLoop(st)
	}()
}

// idle reports whether a sender would find nothing to do: no message queued and no
// mailbox read owed. A sender that is blocked (see blocked) finds nothing either, but
// is woken when the block lifts, so only the queues count here. o.mu is held.
func (o *outbox) idle() bool {
	return len(o.boxQ) == 0 && len(o.directQ) == 0 && !o.mailboxPending()
}

// blocked reports why nothing may be sent to st now ("" when something may).
func (n *Node) blocked(st *clientState) string {
	if why := n.blockedState(st); why != "" {
		return why
	}
	if ok, _ := n.lease.Check(); !ok {
		return leaseLapsed
	}
	return ""
}

// leaseLapsed is why nothing is sent while the delivery lease has run out.
const leaseLapsed = "delivery lease lapsed"

// blockedState is blocked without the lease's expiry, for a caller that reads the lease's
// end itself.
func (n *Node) blockedState(st *clientState) string {
	epoch := n.epoch.Load()
	switch {
	case epoch == 0:
		return "node not live"
	case st.epoch.Load() != epoch:
		return "presence not confirmed under the live epoch"
	case !st.ready.Load():
		return "not subscribed to its inbox"
	case n.lease == nil:
		return "no delivery lease"
	}
	return ""
}

// window is how many directed QoS 1 messages may be in flight to st: the node's window,
// within the client's receive maximum less what mochi has in flight to it.
func (n *Node) window(st *clientState) int {
	w := n.cfg.Window
	if st.cl.Properties.ProtocolVersion == 5 {
		rm := int(st.cl.Properties.Props.ReceiveMaximum)
		if rm == 0 {
			rm = 65535 // MQTT 5's default
		}
		w = min(w, rm-st.ob.pids.mochiInflight())
	}
	return max(w, 0)
}

// sendLoop is a connection's sender: it reads the mailbox when it must, and writes what
// may be written, in order.
func (n *Node) sendLoop(st *clientState) {
	o := st.ob
	bp, _ := n.writeBufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer func() {
		if cap(*bp) <= maxPooledWriteBuf {
			n.writeBufs.Put(bp)
		}
	}()
	buf := (*bp)[:0]
	for {
		var rs replies
		var gone []string
		o.mu.Lock()
		if o.closed || st.revoked.Load() || n.blocked(st) != "" {
			o.sending = false
			o.mu.Unlock()
			return
		}
		// The normal lane is read while the queue is short; the high lane also behind a
		// long normal backlog, whenever it may hold something unread.
		readBox := o.mailboxPending() && !o.reading && len(o.boxQ) < n.cfg.DrainBatch
		readHigh := n.priorities != nil && o.mailboxPending() && !o.reading &&
			(o.hiMore || o.hiReadGen != o.askGen) && o.highQueued() < n.cfg.DrainBatch
		if readBox || readHigh {
			gen, after, hiAfter := o.askGen, o.cursor, o.hiCursor
			o.reading = true
			o.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), n.cfg.StoreTimeout)
			var hi, msgs []store.Message
			var err error
			if n.priorities != nil {
				hi, err = n.priorities.PeekHigh(ctx, st.id, hiAfter, n.cfg.DrainBatch)
			}
			if err == nil && readBox {
				msgs, err = n.store.Peek(ctx, st.id, after, n.cfg.DrainBatch)
			}
			cancel()
			o.mu.Lock()
			o.reading = false
			if err != nil {
				o.sending = false
				o.mu.Unlock()
				n.log.Warn("read mailbox; trying again in a second", "client", st.id, "error", err)
				n.retryLater(st, time.Second)
				return
			}
			if n.priorities != nil {
				n.mergeHigh(o, hi, gen, n.cfg.DrainBatch)
			}
			if readBox {
				n.mergeMailbox(o, msgs, gen, n.cfg.DrainBatch, !o.hiMore)
			}
			n.readDone(o)
			o.mu.Unlock()
			continue
		}
		batch := n.takeWritable(o, n.window(st), &rs, &gone)
		ok := true
		for _, e := range batch {
			if e.qos == 0 {
				continue
			}
			if e.pid, ok = o.pids.alloc(); !ok {
				break
			}
			if o.pids.directed == nil {
				o.pids.directed = map[uint16]*entry{}
			}
			o.pids.directed[e.pid] = e
		}
		if !ok {
			// No free id (see alloc: it cannot happen while the window and mochi's
			// inflight limit hold). The batch goes back, in order, and waits for the wake
			// that an id set free by an acknowledgement brings.
			n.unwriteLocked(o, batch)
		}
		if len(batch) == 0 || !ok {
			o.sending = false
			o.mu.Unlock()
			if !ok {
				n.log.Error("no free packet id for a directed message; waiting for one", "client", st.id)
			}
			rs.run()
			n.remove(st, gone)
			return
		}
		o.mu.Unlock()
		rs.run()
		n.remove(st, gone)
		buf = n.writeBatch(st, batch, buf[:0])
		*bp = buf
	}
}

// maxPooledWriteBuf is the largest write buffer kept for reuse: one grown by a large
// payload is left to the collector rather than held by the pool.
const maxPooledWriteBuf = 64 << 10

// retryLater wakes st's sender after d (a no-op once the connection has ended).
func (n *Node) retryLater(st *clientState, d time.Duration) {
	time.AfterFunc(d, func() { n.wake(st) })
}

// writeBatch writes the entries to the client in one write and settles what the write
// settles (QoS 0 messages, messages too large for the client). It returns the buffer for
// reuse.
func (n *Node) writeBatch(st *clientState, batch []*entry, buf []byte) []byte {
	cl := st.cl
	now := time.Now()
	var tooLarge []*entry
	qos0 := false
	var subIDs []int
	if ids := st.inboxIDs.Load(); ids != nil {
		subIDs = *ids
	}
	sent := batch[:0] // in place: batch is not used after this
	for _, e := range batch {
		left := e.expires.Sub(now)
		secs := uint32((left + time.Second - 1) / time.Second)
		if secs == 0 {
			secs = 1
		}
		b, err := appendPublish(buf, publishPacket{
			topic: e.topic, payload: e.payload, qos: e.qos, pid: e.pid, id: e.id, expiry: secs,
			protocol: cl.Properties.ProtocolVersion, maxSize: cl.Properties.Props.MaximumPacketSize, subIDs: subIDs,
		})
		if err != nil {
			tooLarge = append(tooLarge, e)
			continue
		}
		buf = b
		sent = append(sent, e)
		qos0 = qos0 || e.qos == 0
	}
	var werr error
	if len(sent) > 0 {
		werr = n.writeToClient(st, buf)
		if errors.Is(werr, errBlocked) {
			// Nothing was written: the entries go back to the head of their queues. The
			// too-large ones are settled all the same, as after any other write: no write
			// would ever carry them, and left as they are they would hold a window slot
			// and a packet id, and their routers would wait, until the connection ends.
			n.unwrite(st, sent)
			if len(tooLarge) > 0 {
				n.settleWritten(st, tooLarge, nil, false)
			}
			return buf
		}
		if werr == nil {
			atomic.AddInt64(&n.mqtt.Info.MessagesSent, int64(len(sent)))
			atomic.AddInt64(&n.mqtt.Info.PacketsSent, int64(len(sent)))
			atomic.AddInt64(&n.mqtt.Info.BytesSent, int64(len(buf)))
		}
	}

	if len(tooLarge) > 0 || werr == nil && qos0 {
		n.settleWritten(st, tooLarge, sent, werr == nil)
	}
	if werr != nil && !errors.Is(werr, errRevoked) {
		// The connection is broken: end it, and its outbox spills what is unanswered.
		n.log.Debug("write to client failed; closing the connection", "client", st.id, "error", werr)
		cl.Stop(werr)
	}
	return buf
}

// settleWritten ends what a write settles: the entries too large for the client, and,
// when the write succeeded, the QoS 0 ones it wrote. (A batch of QoS 1 messages that all
// fit, the usual case, settles nothing until its PUBACKs: writeBatch does not call it.)
func (n *Node) settleWritten(st *clientState, tooLarge, sent []*entry, written bool) {
	var rs replies
	var gone []string
	o := st.ob
	o.mu.Lock()
	for _, e := range tooLarge {
		if e.qos > 0 {
			delete(o.pids.directed, e.pid)
			o.window--
		}
		e.state = entryFinished
		e.writes-- // never written
		n.log.Warn("directed message larger than the client's maximum packet size; dropped",
			"client", st.id, "id", e.id, "bytes", len(e.payload))
		n.metrics.tooLarge.Inc()
		n.end(o, e, wire.StatusRejected, errTooLarge.Error(), &rs, &gone)
	}
	if written {
		for _, e := range sent {
			if e.qos != 0 {
				continue
			}
			e.state = entryFinished
			if n.end(o, e, wire.StatusDelivered, "", &rs, &gone) {
				n.metrics.countDelivery("direct", wire.StatusDelivered)
			} else {
				n.metrics.countDelivery("drain", wire.StatusDelivered)
			}
		}
	}
	o.mu.Unlock()
	rs.run()
	n.remove(st, gone)
}

// writeToClient writes b to the client's connection under mochi's client lock, so it never
// interleaves with one of mochi's own packets. Under that lock it checks again that
// nothing forbids the write (the session revoked, the lease lapsed, the node not live):
// the sender decided before it waited for the lock, and mochi may hold it for as long as a
// write to a slow socket takes. The write must finish while the lease holds, so its
// deadline is the lease's end (or WriteTimeout, if sooner); a write cut short ends the
// connection (what was written in part cannot be taken back). Afterwards the deadline is
// what mochi would have set.
func (n *Node) writeToClient(st *clientState, b []byte) error {
	cl := st.cl
	if cl.Closed() || cl.Net.Conn == nil {
		return errClientGone
	}
	cl.Lock()
	defer cl.Unlock()
	if st.revoked.Load() {
		return errRevoked
	}
	if why := n.blockedState(st); why != "" {
		return fmt.Errorf("%w: %s", errBlocked, why)
	}
	// One clock reading and one look at the lease serve the check and both deadlines.
	now, end := time.Now(), n.lease.ValidUntil()
	if !now.Before(end) {
		return fmt.Errorf("%w: %s", errBlocked, leaseLapsed)
	}
	deadline := now.Add(n.cfg.WriteTimeout)
	if end.Before(deadline) {
		deadline = end
	}
	_ = cl.Net.Conn.SetWriteDeadline(deadline)
	_, err := cl.Net.Conn.Write(b)
	var after time.Time // no keepalive: no deadline, as mochi sets it
	if ka := cl.State.Keepalive; ka > 0 {
		// From after the write: one slower than the keepalive would otherwise leave a
		// deadline already past, and mochi's next write (a PINGRESP) would fail.
		after = time.Now().Add(time.Duration(ka) * 3 / 2 * time.Second)
	}
	_ = cl.Net.Conn.SetWriteDeadline(after)
	return err
}

// unwrite puts entries taken for a write that did not happen back where they were, in
// order, so the sender writes them when it may.
func (n *Node) unwrite(st *clientState, batch []*entry) {
	o := st.ob
	o.mu.Lock()
	defer o.mu.Unlock()
	n.unwriteLocked(o, batch)
}

// unwriteLocked is unwrite with o.mu held.
func (n *Node) unwriteLocked(o *outbox, batch []*entry) {
	var box, direct []*entry
	for _, e := range batch {
		if e.state != entryWritten {
			continue
		}
		e.state = entryQueued
		e.writes--
		if e.qos > 0 {
			// Only its own mapping: an entry that got no id in this attempt (sendLoop's
			// alloc failed before it) may still name an id another entry holds now.
			if o.pids.directed[e.pid] == e {
				delete(o.pids.directed, e.pid)
			}
			e.pid = 0
			o.window--
		}
		if e.fromBoxQ {
			box = append(box, e)
		} else {
			direct = append(direct, e)
		}
	}
	o.boxQ = append(box, o.boxQ...)
	o.directQ = append(direct, o.directQ...)
}

// settle answers a direct entry (once) and gives its bytes back to the node's budget; the
// caller runs the returned reply outside the outbox lock.
func (n *Node) settle(o *outbox, e *entry, s wire.Status, detail string) pendingReply {
	if e.reply == nil {
		return pendingReply{}
	}
	n.releaseBytes(o, e)
	return e.answer(s, detail)
}
