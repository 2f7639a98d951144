package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
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

// The store's version of a retained message travels with the packet mochi keeps, in
// Connect.Password: a PUBLISH never encodes it, and mochi's Packet.Copy keeps it. So what
// mochi holds can always be compared with the store, whatever order mochi applied changes
// in (a client's publish and a forwarded one can reach mochi's retained index in either
// order).
var versionMark = []byte("sb-retained-version:")

func tagVersion(pk *packets.Packet, v uint64) {
	if v > 0 {
		pk.Connect.Password = binary.BigEndian.AppendUint64(bytes.Clone(versionMark), v)
	}
}

func versionOf(pk packets.Packet) (uint64, bool) {
	rest, ok := bytes.CutPrefix(pk.Connect.Password, versionMark)
	if !ok || len(rest) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(rest), true
}

// retainedCopies keeps mochi's retained messages on this node in step with the cluster's:
// the store holds every retained message with a version, and whenever mochi's copy of a
// topic is older than a version this node has seen for it, a sync with the store puts it
// right.
type retainedCopies struct {
	mu     sync.Mutex
	seen   map[string]uint64 // the newest version seen per topic: stored here, forwarded, read
	absent map[string]uint64 // topics mochi holds that the last sync did not find in the store
	again  chan struct{}     // capacity 1: sync now
}

func (r *retainedCopies) init() {
	r.seen = map[string]uint64{}
	r.absent = map[string]uint64{}
	r.again = make(chan struct{}, 1)
}

// kick asks for a sync with the store now.
func (r *retainedCopies) kick() {
	select {
	case r.again <- struct{}{}:
	default:
	}
}

// note records that version v of topic exists.
func (r *retainedCopies) note(topic string, v uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v > r.seen[topic] {
		r.seen[topic] = v
	}
}

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
	r.note(pk.TopicName, v)
	return v, nil
}

// retained is told of every retained message mochi kept (OnRetainMessage): one older than
// a version seen for its topic means mochi applied two changes out of order, and the store
// decides.
func (r *retainedCopies) retained(pk packets.Packet) {
	v, ok := versionOf(pk)
	if !ok {
		return // not the cluster's ($SYS)
	}
	r.mu.Lock()
	stale := v < r.seen[pk.TopicName]
	if !stale {
		r.seen[pk.TopicName] = v
	}
	r.mu.Unlock()
	if stale {
		r.kick()
	}
}

// syncLoop reads the store's retained messages once the node is up, when kicked, and every
// retainedSync.
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

// sync gives mochi the store's copy of every topic where mochi holds an older one or none,
// and removes what mochi holds of topics the store no longer has (cleared or expired): at
// once when a newer change of the topic was seen, else when two syncs in a row missed it
// (a publish made while the store was read may be missing from what the read returned).
func (r *retainedCopies) sync(ctx context.Context, c *cluster, rs retainedStore) error {
	ctx, cancel := context.WithTimeout(ctx, 4*c.n.cfg.StoreTimeout)
	defer cancel()
	list, err := rs.Retained(ctx)
	if err != nil {
		return err
	}
	topics := c.n.mqtt.Topics
	now := time.Now().Unix()
	inStore := make(map[string]bool, len(list))
	for _, m := range list {
		inStore[m.Topic] = true
		r.note(m.Topic, m.Version)
		if cur, ok := topics.Retained.Get(m.Topic); ok {
			if v, _ := versionOf(cur); v >= m.Version {
				continue
			}
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
		tagVersion(&pk, m.Version)
		topics.RetainMessage(pk)
	}
	absent := map[string]uint64{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for topic, pk := range topics.Retained.GetAll() {
		v, ours := versionOf(pk)
		if !ours || inStore[topic] {
			continue
		}
		if v < r.seen[topic] || r.absent[topic] == v {
			topics.RetainMessage(packets.Packet{TopicName: topic, FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}})
			continue
		}
		absent[topic] = v
	}
	r.absent = absent
	return nil
}
