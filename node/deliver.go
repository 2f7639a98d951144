package node

import (
	"context"
	"errors"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// handler serves the wire protocol for the node.
type handler struct{ n *Node }

// Deliver publishes a routed message to its client only, and answers once the client has
// acknowledged it (QoS 1) or it was written (QoS 0).
func (h handler) Deliver(ctx context.Context, d wire.Deliver) wire.Result {
	n := h.n
	epoch := n.epoch.Load()
	if epoch == 0 || d.Epoch != epoch {
		return h.result(d.Seq, wire.StatusStaleEpoch, "node is not live under that epoch", "direct")
	}
	st := n.clients.get(d.Client)
	switch {
	case st == nil || !st.connected.Load():
		return h.result(d.Seq, wire.StatusNotHere, "client not connected here", "direct")
	case d.Session != "" && d.Session != st.session:
		return h.result(d.Seq, wire.StatusNotHere, "a different session of the client is connected here", "direct")
	case !st.ready.Load():
		return h.result(d.Seq, wire.StatusNotHere, "client not subscribed to its inbox", "direct")
	}
	m := outMessage{id: d.ID, topic: d.Topic, payload: d.Payload, qos: d.QoS, expires: time.UnixMilli(d.Expires)}
	if m.expired(time.Now()) {
		return h.result(d.Seq, wire.StatusExpired, "message expired before delivery", "direct")
	}
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	start := time.Now()
	status, detail := n.sendWait(ctx, st, []outMessage{m})
	n.metrics.deliverySeconds.Observe(time.Since(start).Seconds())
	return h.result(d.Seq, status[0], detail, "direct")
}

func (h handler) result(seq uint64, s wire.Status, detail, path string) wire.Result {
	h.n.metrics.countDelivery(path, s)
	return wire.Result{Seq: seq, Status: s, Detail: detail}
}

// Kick disconnects a session taken over on another node (MQTT 5 reason 0x8E).
func (h handler) Kick(_ context.Context, k wire.Kick) wire.Result {
	st := h.n.clients.get(k.Client)
	if st == nil || st.session != k.Session {
		return wire.Result{Seq: k.Seq, Status: wire.StatusNotHere}
	}
	h.n.log.Info("session taken over on another node; disconnecting it here", "client", k.Client)
	h.n.metrics.takeovers.WithLabelValues("kicked").Inc()
	_ = h.n.mqtt.DisconnectClient(st.cl, packets.ErrSessionTakenOver)
	return wire.Result{Seq: k.Seq, Status: wire.StatusDelivered}
}

// Drain starts draining the client's mailbox if it is connected and ready here.
func (h handler) Drain(_ context.Context, d wire.Drain) wire.Result {
	st := h.n.clients.get(d.Client)
	if st == nil || !st.ready.Load() {
		return wire.Result{Seq: d.Seq, Status: wire.StatusNotHere}
	}
	h.n.startDrain(st)
	return wire.Result{Seq: d.Seq, Status: wire.StatusDelivered}
}

// outMessage is a message on its way to a client.
type outMessage struct {
	id      string
	topic   string
	payload []byte
	qos     byte
	expires time.Time
}

func (m outMessage) expired(now time.Time) bool { return !now.Before(m.expires) }

// sendWait writes msgs to the client in order and waits for each acknowledgement. It
// returns a status per message; a message after a failed one is not sent (Failed), so the
// caller can keep order by retrying from the first failure. The caller holds st.sendMu.
func (n *Node) sendWait(ctx context.Context, st *clientState, msgs []outMessage) ([]wire.Status, string) {
	status := make([]wire.Status, len(msgs))
	for i := range status {
		status[i] = wire.StatusFailed
	}
	type pending struct {
		i  int
		id uint16
		ch chan bool
	}
	var waits []pending
	cl := st.cl
	detail := ""
	for i, m := range msgs {
		if cl.Closed() {
			if i == 0 {
				status[0] = wire.StatusNotHere
			}
			detail = "client disconnected"
			break
		}
		pk := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.qos},
			TopicName:   m.topic,
			Payload:     m.payload,
			Created:     time.Now().Unix(),
			Expiry:      m.expires.Unix(),
			Properties:  packets.Properties{User: []packets.UserProperty{{Key: "sb-id", Val: m.id}}},
		}
		if m.qos == 0 {
			if err := cl.WritePacket(pk); err != nil {
				detail = "write: " + err.Error()
				break
			}
			status[i] = wire.StatusDelivered
			continue
		}
		pid, err := cl.NextPacketID()
		if err != nil {
			detail = "no free packet id"
			break
		}
		pk.PacketID = uint16(pid)
		ch := st.addWaiter(pk.PacketID)
		// In mochi's inflight store, so its PUBACK handling finds the packet (and calls
		// OnQosComplete) and a resumed session resends it.
		if cl.State.Inflight.Set(pk) {
			cl.State.Inflight.DecreaseSendQuota()
		}
		if err := cl.WritePacket(pk); err != nil {
			st.removeWaiter(pk.PacketID)
			cl.State.Inflight.Delete(pk.PacketID)
			detail = "write: " + err.Error()
			break
		}
		waits = append(waits, pending{i, pk.PacketID, ch})
	}
	timer := time.NewTimer(n.cfg.AckTimeout)
	defer timer.Stop()
	for _, w := range waits {
		select {
		case acked := <-w.ch:
			if acked {
				status[w.i] = wire.StatusDelivered
				continue
			}
			detail = "dropped before acknowledgement"
		case <-st.gone:
			detail = "client disconnected before acknowledging"
		case <-timer.C:
			detail = "no acknowledgement within the ack timeout"
		case <-ctx.Done():
			detail = "cancelled: " + ctx.Err().Error()
		}
		// Stop waiting for this and the rest; their outcome is unknown.
		for _, r := range waits {
			if status[r.i] != wire.StatusDelivered {
				st.removeWaiter(r.id)
			}
		}
		break
	}
	// A QoS 1 message counts as delivered only if every message before it was too: a later
	// acknowledgement after an earlier failure would break order if the earlier one is
	// retried.
	for i := range status {
		if status[i] != wire.StatusDelivered {
			for j := i + 1; j < len(status); j++ {
				status[j] = wire.StatusFailed
			}
			break
		}
	}
	return status, detail
}

// startDrain drains the client's mailbox unless a drain is already running, in which case
// that drain looks again when it finishes.
func (n *Node) startDrain(st *clientState) {
	st.mu.Lock()
	if st.draining {
		st.again = true
		st.mu.Unlock()
		return
	}
	st.draining = true
	st.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			n.drain(st)
			st.mu.Lock()
			if st.again {
				st.again = false
				st.mu.Unlock()
				continue
			}
			st.draining = false
			st.mu.Unlock()
			return
		}
	}()
}

// drain delivers the client's mailbox in order, a batch at a time, deleting each message
// only after the client acknowledged it and only while this connection owns the client.
func (n *Node) drain(st *clientState) {
	batch := n.cfg.DrainBatch
	if rm := int(st.cl.Properties.Props.ReceiveMaximum); rm > 0 && rm < batch {
		batch = rm
	}
	for {
		select {
		case <-st.gone:
			return
		default:
		}
		if !st.ready.Load() || n.stopping.Load() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.StoreTimeout)
		msgs, err := n.store.Peek(ctx, st.id, batch)
		cancel()
		if err != nil {
			n.log.Warn("drain: read mailbox", "client", st.id, "error", err)
			n.retryDrainLater(st)
			return
		}
		if len(msgs) == 0 {
			return
		}
		now := time.Now()
		var out []outMessage
		var outIdx []int
		for i, m := range msgs {
			if m.Expired(now) {
				continue // never delivered; acknowledged with the batch
			}
			out = append(out, outMessage{id: m.ID, topic: m.Topic, payload: m.Payload, qos: m.QoS, expires: m.Expires})
			outIdx = append(outIdx, i)
		}
		st.sendMu.Lock()
		status, detail := n.sendWait(context.Background(), st, out)
		st.sendMu.Unlock()
		// Acknowledge the prefix of the batch that is settled: delivered or expired.
		settled := len(msgs)
		for k, s := range status {
			n.metrics.countDelivery("drain", s)
			if s != wire.StatusDelivered {
				settled = outIdx[k]
				break
			}
		}
		ids := make([]string, settled)
		for i := range settled {
			ids[i] = msgs[i].ID
		}
		if len(ids) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), n.cfg.StoreTimeout)
			_, err = n.store.Ack(ctx, st.id, st.session, ids)
			cancel()
			if errors.Is(err, store.ErrNotOwner) {
				// The client connected elsewhere since: this connection is stale.
				n.log.Info("drain: session no longer owns the client; disconnecting it", "client", st.id)
				_ = n.mqtt.DisconnectClient(st.cl, packets.ErrSessionTakenOver)
				return
			}
			if err != nil {
				n.log.Warn("drain: acknowledge", "client", st.id, "error", err)
				n.retryDrainLater(st)
				return
			}
		}
		if settled < len(msgs) {
			n.log.Info("drain: stopped", "client", st.id, "reason", detail)
			if !st.cl.Closed() {
				n.retryDrainLater(st)
			}
			return
		}
	}
}

// retryDrainLater tries the drain again after a pause, while the client stays connected.
func (n *Node) retryDrainLater(st *clientState) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			n.startDrain(st)
		case <-st.gone:
		}
	}()
}

// reassertAll records the node's new epoch in every connected client's presence and drains
// what was queued while the node was not live. A client whose presence another session
// owns now was taken over while the node was cut off: it is disconnected.
func (n *Node) reassertAll(ctx context.Context, epoch int64) {
	for _, st := range n.clients.all() {
		if !st.connected.Load() {
			continue // its OnConnect is still writing presence and will see the new epoch
		}
		sctx, cancel := context.WithTimeout(ctx, n.cfg.StoreTimeout)
		err := n.store.Reassert(sctx, st.id, st.session, epoch)
		cancel()
		switch {
		case errors.Is(err, store.ErrNotOwner):
			_ = n.mqtt.DisconnectClient(st.cl, packets.ErrSessionTakenOver)
		case err != nil:
			n.log.Warn("reassert presence", "client", st.id, "error", err)
		case st.ready.Load():
			n.startDrain(st)
		}
	}
}
