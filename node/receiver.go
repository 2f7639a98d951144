package node

import (
	"sync"

	"github.com/switchboard-mqtt/switchboard/wire"
)

// inItem is a publish another node (or this one, for a shared group) sent us.
type inItem struct {
	body  []byte
	reply func(wire.Result)
}

// receiver hands one sending node's publishes to mochi, in the order they came, on its
// own goroutine: the wire reader must not block, and a publish to a slow subscriber may
// (its mailbox takes what mochi drops).
type receiver struct {
	c    *cluster
	wake chan struct{}
	quit chan struct{}
	done chan struct{}

	mu    sync.Mutex
	queue []inItem
}

// receiverFor returns the receiver for a sending node, starting it on first use.
func (c *cluster) receiverFor(from string) *receiver {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.in[from]
	if r == nil {
		r = &receiver{c: c, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
		if c.closed {
			close(r.quit)
			close(r.done)
			return r
		}
		c.in[from] = r
		c.wg.Add(1)
		go func() { defer c.wg.Done(); defer close(r.done); r.run() }()
	}
	return r
}

func (r *receiver) add(it inItem) {
	r.mu.Lock()
	select {
	case <-r.quit:
		r.mu.Unlock()
		it.reply(wire.Result{Status: wire.StatusFailed, Detail: "node shutting down"})
		return
	default:
	}
	r.queue = append(r.queue, it)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *receiver) close() {
	r.mu.Lock()
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
	r.mu.Unlock()
	<-r.done
}

func (r *receiver) run() {
	for {
		select {
		case <-r.wake:
		case <-r.quit:
			r.mu.Lock()
			q := r.queue
			r.queue = nil
			r.mu.Unlock()
			for _, it := range q {
				it.reply(wire.Result{Status: wire.StatusFailed, Detail: "node shutting down"})
			}
			return
		}
		for {
			r.mu.Lock()
			q := r.queue
			r.queue = nil
			r.mu.Unlock()
			if len(q) == 0 {
				break
			}
			for _, it := range q {
				r.c.deliverForwarded(it)
			}
		}
	}
}

// deliverForwarded hands one forwarded publish to this node's subscribers.
func (c *cluster) deliverForwarded(it inItem) {
	f, err := decodeForwarded(it.body)
	if err != nil {
		it.reply(wire.Result{Status: wire.StatusBadRequest, Detail: err.Error()})
		return
	}
	c.metrics.forwards.WithLabelValues("received").Inc()
	if f.flags&fwdShared != 0 {
		c.shares.deliver(c, f, it.reply)
		return
	}
	pk := f.packet()
	if pk.FixedHeader.Retain {
		tagVersion(&pk, f.version) // mochi keeps it with its version (OnRetainMessage checks it)
	}
	err = c.n.mqtt.InjectPacket(c.fwdClient, pk)
	if err != nil {
		it.reply(wire.Result{Status: wire.StatusFailed, Detail: err.Error()})
		return
	}
	it.reply(wire.Result{Status: wire.StatusDelivered})
}
