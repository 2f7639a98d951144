package node

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/routes"
	"github.com/switchboard-mqtt/switchboard/wire"
)

const (
	linkQueueMax   = 65536   // publishes waiting for one node; more are dropped
	linkBatchMax   = 1024    // items in one Forward
	linkBatchBytes = 1 << 20 // bytes of items in one Forward
	linkRetryMin   = 100 * time.Millisecond
	linkRetryMax   = 2 * time.Second
	linkResync     = 5 * time.Minute // a full push now and then, whatever happened
)

var errLinkClosed = errors.New("the link to that node closed")

// outItem is a publish waiting for a node; done, when set, gets its outcome.
type outItem struct {
	body []byte
	done func(wire.Result, error)
}

// link sends one other node this node's routes and the publishes for its subscribers, in
// order, over the node pool's wire connection. One goroutine owns the sending; results come
// back on the connection's reader.
type link struct {
	c     *cluster
	id    string
	addr  string
	epoch int64 // the peer's registration this link is for

	wake chan struct{} // capacity 1
	quit chan struct{}
	done chan struct{}

	changes *routes.Changes // our filters changed since the last push

	mu        sync.Mutex
	queue     []outItem
	sentVer   uint64 // the local version the peer acknowledged
	sentEpoch int64  // our epoch it was sent under
	pushing   bool
	full      bool          // the next push sends every filter
	synced    chan struct{} // closed when sentVer advances (or the link gives up for now)
	failing   bool          // the last attempt to reach the peer failed: nobody waits on it
	retryAt   time.Duration
}

func (c *cluster) newLink(id, addr string, epoch int64) *link {
	l := &link{
		c: c, id: id, addr: addr, epoch: epoch,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		full: true, synced: make(chan struct{}), changes: c.table.Track(),
	}
	c.wg.Add(1)
	go func() { defer c.wg.Done(); defer close(l.done); l.run() }()
	l.poke()
	return l
}

func (l *link) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *link) close() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	<-l.done
	l.c.table.Untrack(l.changes)
}

// enqueue queues a publish for the node; a full queue drops it (and fails its done).
func (l *link) enqueue(it outItem) {
	l.mu.Lock()
	if len(l.queue) >= linkQueueMax {
		l.mu.Unlock()
		l.c.metrics.forwards.WithLabelValues("dropped").Inc()
		if it.done != nil {
			it.done(wire.Result{}, errors.New("the link's queue is full"))
		}
		return
	}
	l.queue = append(l.queue, it)
	l.mu.Unlock()
	l.poke()
}

// awaitSynced waits until the peer acknowledged local version ver, unless the link cannot
// reach it now.
func (l *link) awaitSynced(ctx context.Context, ver uint64) {
	for {
		l.mu.Lock()
		if l.sentVer >= ver || l.failing {
			l.mu.Unlock()
			return
		}
		ch := l.synced
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-l.quit:
			return
		}
	}
}

// signal wakes the waiters of awaitSynced; the caller holds mu.
func (l *link) signal() {
	close(l.synced)
	l.synced = make(chan struct{})
}

func (l *link) run() {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	resync := time.NewTicker(linkResync)
	defer resync.Stop()
	for {
		select {
		case <-l.wake:
		case <-retry.C:
		case <-resync.C:
			l.mu.Lock()
			l.full = true
			l.mu.Unlock()
		case <-l.quit:
			l.failQueue(errLinkClosed)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := l.c.n.peers.Get(ctx, l.addr)
		cancel()
		if err != nil {
			l.unreachable(err)
			retry.Reset(l.backoff())
			continue
		}
		if again := l.push(conn); again > 0 {
			retry.Reset(again)
		}
		l.send(conn)
	}
}

// backoff returns the next retry delay, doubling up to linkRetryMax.
func (l *link) backoff() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retryAt = min(max(l.retryAt*2, linkRetryMin), linkRetryMax)
	return l.retryAt
}

// unreachable: the peer could not be dialled. Subscribers stop waiting for it, and what
// was queued for it is dropped (its subscribers are unreachable too; a shared delivery
// goes to another member).
func (l *link) unreachable(err error) {
	l.mu.Lock()
	l.full = true
	if !l.failing {
		l.failing = true
		l.signal()
		l.c.log.Warn("cannot reach a node for publish/subscribe", "peer", l.id, "addr", l.addr, "error", err)
	}
	l.mu.Unlock()
	l.failQueue(err)
}

func (l *link) failQueue(err error) {
	l.mu.Lock()
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, it := range q {
		l.c.metrics.forwards.WithLabelValues("dropped").Inc()
		if it.done != nil {
			it.done(wire.Result{}, err)
		}
	}
}

// push sends our routes if they changed since the peer last acknowledged them (all of
// them after a failure, a new registration of ours, or now and then). It returns when to
// try again after a refusal, or 0.
func (l *link) push(conn *wire.Conn) time.Duration {
	epoch := l.c.n.epoch.Load()
	if epoch == 0 {
		return 0 // not live: the peer would refuse; the epoch's arrival wakes every link
	}
	l.mu.Lock()
	if l.pushing || (!l.full && l.c.table.Version() == l.sentVer && epoch == l.sentEpoch) {
		l.mu.Unlock()
		return 0
	}
	full := l.full || epoch != l.sentEpoch
	var counts map[string]int
	var ver uint64
	if full {
		counts, ver = l.c.table.Full(l.changes)
	} else {
		counts, ver = l.c.table.Delta(l.changes)
	}
	l.pushing = true
	l.mu.Unlock()
	body := routesUpdate{full: full, counts: counts}.append(nil)
	conn.Forward(wire.Forward{From: l.c.n.cfg.ID, Epoch: epoch, Items: []wire.Item{{Kind: itemRoutes, Body: body}}},
		func(_ int, r wire.Result, err error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.pushing = false
			if err != nil || r.Status != wire.StatusDelivered {
				l.full = true
				if !l.failing {
					l.failing = true
					l.signal()
				}
				l.c.log.Debug("routes push refused", "peer", l.id, "status", r.Status, "detail", r.Detail, "error", err)
				go func() {
					select {
					case <-time.After(linkRetryMin):
						l.poke()
					case <-l.quit:
					}
				}()
				return
			}
			l.sentVer, l.sentEpoch, l.full, l.failing, l.retryAt = ver, epoch, false, false, 0
			l.signal()
			l.poke() // more may have changed meanwhile
		})
	return 0
}

// send forwards everything queued, in order, in batches.
func (l *link) send(conn *wire.Conn) {
	l.mu.Lock()
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	epoch := l.c.n.epoch.Load()
	for len(q) > 0 {
		n, bytes := 0, 0
		for n < len(q) && n < linkBatchMax && (n == 0 || bytes+len(q[n].body) <= linkBatchBytes) {
			bytes += len(q[n].body)
			n++
		}
		batch := q[:n]
		q = q[n:]
		items := make([]wire.Item, n)
		for i, it := range batch {
			items[i] = wire.Item{Kind: itemPublish, Body: it.body}
		}
		conn.Forward(wire.Forward{From: l.c.n.cfg.ID, Epoch: epoch, Items: items}, func(i int, r wire.Result, err error) {
			it := batch[i]
			if err != nil || r.Status != wire.StatusDelivered {
				l.c.metrics.forwards.WithLabelValues("failed").Inc()
			} else {
				l.c.metrics.forwards.WithLabelValues("sent").Inc()
			}
			if it.done != nil {
				it.done(r, err)
			}
		})
	}
}
