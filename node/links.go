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
	linkQueueMax      = 65536    // publishes waiting for one node; more are dropped
	linkQueueBytes    = 64 << 20 // and their bytes
	linkInflightMax   = 8192     // publishes sent to one node and not answered yet
	linkInflightBytes = 16 << 20 // and their bytes: a slow node holds this much, not more
	linkBatchMax      = 1024     // items in one Forward
	linkBatchBytes    = 1 << 20  // bytes of items in one Forward (and of one routes chunk)
	linkRetryMin      = 100 * time.Millisecond
	linkRetryMax      = 2 * time.Second
	linkResync        = 5 * time.Minute // a full push now and then, whatever happened
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
	// ctx ends with quit, so that close does not wait out a dial to a peer that does not
	// answer.
	ctx    context.Context
	cancel context.CancelFunc

	changes *routes.Changes // our filters changed since the last push

	mu            sync.Mutex
	queue         []outItem
	queuedBytes   int
	inflight      int // publishes sent, not answered
	inflightBytes int
	nextDial      time.Time // no dial before this, after one failed
	sentVer       uint64    // the local version the peer acknowledged
	sentEpoch     int64     // our epoch it was sent under
	pushing       bool
	full          bool          // the next push sends every filter
	synced        chan struct{} // closed when sentVer advances (or the link gives up for now)
	failing       bool          // the last attempt to reach the peer failed: nobody waits on it
	// lagging: a SUBACK's or retained publish's wait for the peer ran out
	// (RouteSyncTimeout). Nobody waits on it again until it answers: a peer that is frozen,
	// or whose link is silent, would otherwise hold every SUBACK and retained PUBACK on this
	// node for RouteSyncTimeout until the link's idle timeout ends the connection.
	lagging bool
	retryAt time.Duration
}

func (c *cluster) newLink(id, addr string, epoch int64) *link {
	l := &link{
		c: c, id: id, addr: addr, epoch: epoch,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		full: true, synced: make(chan struct{}), changes: c.table.Track(),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
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
		l.cancel()
	}
	<-l.done
	l.c.table.Untrack(l.changes)
}

// enqueue queues a publish for the node; a full queue drops it (and fails its done).
func (l *link) enqueue(it outItem) {
	l.mu.Lock()
	if len(l.queue) >= linkQueueMax || l.queuedBytes+len(it.body) > linkQueueBytes {
		l.mu.Unlock()
		l.c.metrics.forwards.WithLabelValues("dropped").Inc()
		if it.done != nil {
			it.done(wire.Result{}, errors.New("the link's queue is full"))
		}
		return
	}
	l.queue = append(l.queue, it)
	l.queuedBytes += len(it.body)
	l.mu.Unlock()
	l.poke()
}

// awaitSynced waits until the peer acknowledged local version ver, unless the link cannot
// reach it now or lags. A wait that runs out marks the link lagging.
func (l *link) awaitSynced(ctx context.Context, ver uint64) {
	for {
		l.mu.Lock()
		if l.sentVer >= ver || l.failing || l.lagging {
			l.mu.Unlock()
			return
		}
		ch := l.synced
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				l.lag(ver)
			}
			return
		case <-l.quit:
			return
		}
	}
}

// lag marks the link lagging if the peer still has not acknowledged ver.
func (l *link) lag(ver uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sentVer < ver {
		l.lagLocked("a new subscription")
	}
}

// lagLocked marks the link lagging, after a wait for the peer to take what ran out; the
// caller holds mu. The wait's item is still pending on the link: its answer, or the
// connection's failure and the full push that follows, ends the lag.
func (l *link) lagLocked(what string) {
	if l.failing || l.lagging {
		return
	}
	l.lagging = true
	l.c.log.Warn("a node did not take "+what+" within the route sync timeout; SUBACKs and retained publishes stop waiting for it until it does",
		"peer", l.id, "addr", l.addr, "timeout", l.c.n.cfg.RouteSyncTimeout)
}

// caughtUpLocked ends a lag: the peer answered. The caller holds mu.
func (l *link) caughtUpLocked() {
	if l.lagging {
		l.lagging = false
		l.c.log.Info("a lagging node answers again; SUBACKs and retained publishes wait for it again", "peer", l.id)
	}
}

// waits reports whether a SUBACK or retained publish waits for the peer now.
func (l *link) waits() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.failing && !l.lagging
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
		l.mu.Lock()
		wait := time.Until(l.nextDial)
		l.mu.Unlock()
		if wait > 0 {
			continue // the retry timer is set; what is queued meanwhile waits for it
		}
		ctx, cancel := context.WithTimeout(l.ctx, 5*time.Second)
		conn, err := l.c.n.peers.Get(ctx, l.addr)
		cancel()
		if err != nil && l.ctx.Err() != nil {
			continue // closed while dialling: the next select returns
		}
		if err != nil {
			l.unreachable(err)
			d := l.backoff()
			l.mu.Lock()
			l.nextDial = time.Now().Add(d)
			l.mu.Unlock()
			retry.Reset(d)
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
	return l.nextRetry()
}

// nextRetry doubles the retry delay (up to linkRetryMax) and returns it; the caller
// holds mu.
func (l *link) nextRetry() time.Duration {
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
	l.queue, l.queuedBytes = nil, 0
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
	l.mu.Lock()
	if epoch == 0 {
		// Not live: the peer would refuse, and nobody should wait for it (the epoch's
		// arrival wakes every link).
		if !l.failing {
			l.failing = true
			l.signal()
		}
		l.mu.Unlock()
		return 0
	}
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
	l.mu.Unlock() // a Forward that fails at once answers on this goroutine
	// A full push may not fit one frame: it goes in chunks of about linkBatchBytes, the
	// first replacing what the peer holds, the others adding to it, in order on one
	// connection; it counts as acknowledged when every chunk is.
	chunks := splitRoutes(counts, full)
	left, failed := len(chunks), false // guarded by mu
	for _, body := range chunks {
		conn.Forward(wire.Forward{From: l.c.n.cfg.ID, Epoch: epoch, Items: []wire.Item{{Kind: itemRoutes, Body: body}}},
			func(_ int, r wire.Result, err error) {
				l.mu.Lock()
				defer l.mu.Unlock()
				if err != nil || r.Status != wire.StatusDelivered {
					if !failed {
						l.c.log.Debug("routes push refused", "peer", l.id, "status", r.Status, "detail", r.Detail, "error", err)
					}
					failed = true
				}
				if left--; left > 0 {
					return
				}
				l.pushing = false
				if failed {
					l.full = true
					if !l.failing {
						l.failing = true
						l.signal()
					}
					retry := l.nextRetry()
					go func() {
						select {
						case <-time.After(retry):
							l.poke()
						case <-l.quit:
						}
					}()
					return
				}
				l.caughtUpLocked()
				l.sentVer, l.sentEpoch, l.full, l.failing, l.retryAt = ver, epoch, false, false, 0
				l.signal()
				l.poke() // more may have changed meanwhile
			})
	}
	return 0
}

// splitRoutes encodes counts as routes updates of about linkBatchBytes at most; with full,
// the first says so. There is always at least one (an empty full push clears the peer's
// copy).
func splitRoutes(counts map[string]int, full bool) [][]byte {
	var out [][]byte
	chunk := map[string]int{}
	size := 0
	flush := func() {
		out = append(out, routesUpdate{full: full && len(out) == 0, counts: chunk}.append(nil))
		chunk, size = map[string]int{}, 0
	}
	for f, n := range counts {
		if size > 0 && size+len(f)+16 > linkBatchBytes {
			flush()
		}
		chunk[f] = n
		size += len(f) + 16
	}
	if size > 0 || len(out) == 0 {
		flush()
	}
	return out
}

// send forwards what is queued, in order, in batches, as far as the in-flight budget
// allows; answers free the budget and wake the link for the rest.
func (l *link) send(conn *wire.Conn) {
	epoch := l.c.n.epoch.Load()
	for {
		l.mu.Lock()
		n, bytes := 0, 0
		for n < len(l.queue) && n < linkBatchMax && l.inflight+n < linkInflightMax &&
			(n == 0 || bytes+len(l.queue[n].body) <= linkBatchBytes) &&
			(l.inflightBytes == 0 || l.inflightBytes+bytes+len(l.queue[n].body) <= linkInflightBytes) {
			bytes += len(l.queue[n].body)
			n++
		}
		if n == 0 {
			l.mu.Unlock()
			return
		}
		batch := l.queue[:n:n]
		l.queue = l.queue[n:]
		l.queuedBytes -= bytes
		l.inflight += n
		l.inflightBytes += bytes
		l.mu.Unlock()
		items := make([]wire.Item, n)
		for i, it := range batch {
			items[i] = wire.Item{Kind: itemPublish, Body: it.body}
		}
		conn.Forward(wire.Forward{From: l.c.n.cfg.ID, Epoch: epoch, Items: items}, func(i int, r wire.Result, err error) {
			it := batch[i]
			l.mu.Lock()
			l.inflight--
			l.inflightBytes -= len(it.body)
			if err == nil && r.Status == wire.StatusDelivered {
				l.caughtUpLocked()
			}
			l.mu.Unlock()
			l.poke()
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
