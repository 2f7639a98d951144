package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/store"
)

// retainedSync is how often a node compares its retained messages with the store's, which
// mends what it missed while cut off from a node that changed one.
const retainedSync = time.Minute

// retainedStore is the store's part in cluster-wide retained messages.
type retainedStore interface {
	SetRetained(ctx context.Context, r store.Retained) (uint64, error)
	Retained(ctx context.Context) ([]store.Retained, error)
}

var errRetainedNotStored = errors.New("the retained message could not be stored")

// retainedCopies keeps mochi's retained messages on this node in step with the cluster's:
// the store holds every retained message with a version, and a node applies a change (its
// own, forwarded, or read from the store) only when it is newer than the one it has.
type retainedCopies struct {
	mu    chan struct{} // a lock that a sync can hold across a store read
	ver   map[string]uint64
	again chan struct{} // capacity 1: sync now
}

func (r *retainedCopies) init() {
	r.mu = make(chan struct{}, 1)
	r.ver = map[string]uint64{}
	r.again = make(chan struct{}, 1)
}

// kick asks for a sync with the store now.
func (r *retainedCopies) kick() {
	select {
	case r.again <- struct{}{}:
	default:
	}
}

func (r *retainedCopies) lock()   { r.mu <- struct{}{} }
func (r *retainedCopies) unlock() { <-r.mu }

// store keeps a retained publish of a client of this node (an empty payload clears the
// topic) and returns its version.
func (r *retainedCopies) store(c *cluster, pk packets.Packet) (uint64, error) {
	rs, ok := c.n.store.(retainedStore)
	if !ok {
		return 0, nil
	}
	rec := store.Retained{Topic: pk.TopicName}
	if len(pk.Payload) > 0 {
		f := fromPacket(pk, "", time.Now().Unix())
		rec.Data = f.append(nil)
		if f.flags&fwdExpiry != 0 {
			rec.TTL = time.Duration(f.expiry) * time.Second
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.n.cfg.StoreTimeout)
	defer cancel()
	v, err := rs.SetRetained(ctx, rec)
	if err != nil {
		c.log.Warn("retained message not stored", "topic", pk.TopicName, "error", err)
		return 0, fmt.Errorf("%w: %w", errRetainedNotStored, err)
	}
	r.lock()
	if v > r.ver[pk.TopicName] {
		r.ver[pk.TopicName] = v
	}
	r.unlock()
	return v, nil
}

// received notes a retained message another node forwarded. When this node has a newer
// one, it returns a function that puts the newer one back after mochi took the
// forwarded one (mochi retains whatever retained publish it is given).
func (r *retainedCopies) received(c *cluster, f forwarded) func() {
	r.lock()
	defer r.unlock()
	if f.version == 0 || f.version > r.ver[f.topic] {
		r.ver[f.topic] = f.version
		return nil
	}
	prev, had := c.n.mqtt.Topics.Retained.Get(f.topic)
	return func() {
		if had {
			c.n.mqtt.Topics.RetainMessage(prev)
		} else {
			c.n.mqtt.Topics.RetainMessage(packets.Packet{TopicName: f.topic, FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}})
		}
	}
}

// syncLoop reads the store's retained messages once the node is up, and every
// retainedSync after that.
func (r *retainedCopies) syncLoop(ctx context.Context, c *cluster) {
	rs, ok := c.n.store.(retainedStore)
	if !ok {
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-r.again:
		case <-ctx.Done():
			return
		case <-c.stop:
			return
		}
		if err := r.sync(ctx, c, rs); err != nil {
			c.log.Warn("cannot read the retained messages from the store", "error", err)
			t.Reset(5 * time.Second)
			continue
		}
		t.Reset(retainedSync)
	}
}

// sync applies every retained message of the store newer than this node's copy, and
// removes the copies of topics the store no longer has (cleared or expired).
func (r *retainedCopies) sync(ctx context.Context, c *cluster, rs retainedStore) error {
	ctx, cancel := context.WithTimeout(ctx, 4*c.n.cfg.StoreTimeout)
	defer cancel()
	r.lock()
	defer r.unlock()
	before := make(map[string]bool, len(r.ver))
	for t := range r.ver {
		before[t] = true
	}
	list, err := rs.Retained(ctx)
	if err != nil {
		return err
	}
	now := time.Now().Unix()
	for _, m := range list {
		delete(before, m.Topic)
		if m.Version <= r.ver[m.Topic] {
			continue
		}
		f, err := decodeForwarded(m.Data)
		if err != nil {
			c.log.Warn("a retained message in the store cannot be read; skipped", "topic", m.Topic, "error", err)
			continue
		}
		pk := f.packet()
		pk.FixedHeader.Retain = true
		pk.Created = now
		if m.TTL > 0 {
			secs := int64((m.TTL + time.Second - 1) / time.Second)
			pk.Properties.MessageExpiryInterval = uint32(secs)
			pk.Expiry = now + secs
		}
		c.n.mqtt.Topics.RetainMessage(pk)
		r.ver[m.Topic] = m.Version
	}
	for t := range before {
		// Known before the read began and not in the store: cleared or expired there.
		c.n.mqtt.Topics.RetainMessage(packets.Packet{TopicName: t, FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}})
		delete(r.ver, t)
	}
	return nil
}
