package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/mqttclient"
)

// A failover run (DirectConfig.Reconnect) is a directed run whose clients behave as
// devices do when their node goes away: a client whose connection ends waits a random
// moment, dials one of the other nodes, subscribes again and carries on, backing off
// exponentially (with full jitter) while dials fail. With KillPID the run makes the fault
// itself: it SIGKILLs that process (a node) KillAfter into the sending. The checker counts
// every accepted message as in any run; FailoverStats says how long the clients took to
// come back and to receive what was queued for them meanwhile.

// FailoverStats are a failover run's figures. Times are seconds from the kill (or, without
// KillPID, from the first dropped connection).
type FailoverStats struct {
	KilledPID int `json:"killed_pid,omitempty"`
	// KilledAt is when the kill was sent, seconds into the sending.
	KilledAt float64 `json:"killed_at,omitempty"`
	// Dropped counts the clients whose connection ended during the run; Reconnected those
	// of them that were connected and subscribed again by its end.
	Dropped     int `json:"dropped"`
	Reconnected int `json:"reconnected"`
	// FailedDials counts the dials and subscribes that failed before a client was back;
	// DialErrors are the first few of their errors.
	FailedDials int64    `json:"failed_dials"`
	DialErrors  []string `json:"dial_errors,omitempty"`
	// Back is, over the dropped clients, the time until each was connected and subscribed
	// again; AllBack the largest (0 when some never came back).
	Back    Spread  `json:"back_s"`
	AllBack float64 `json:"all_back_s"`
	// Drained is the time until the last dropped client had received every message
	// accepted for it before it was back: when the backlog its mailbox took meanwhile was
	// delivered. 0 when some never drained.
	Drained float64 `json:"drained_s"`
}

// failover is the state of a run with Reconnect: one supervisor goroutine per client.
type failover struct {
	d     *direct
	stop  chan struct{}
	ctx   context.Context // ends with stop: a dial in progress gives up
	end   context.CancelFunc
	once  sync.Once
	wg    sync.WaitGroup
	since atomic.Int64 // ns since d.epoch of the kill or the first drop; 0 none yet
	fails atomic.Int64

	killErr error // set by the kill goroutine; read after shutdown

	errMu   sync.Mutex
	dialErr []string // the first few failed dials' errors

	mu      sync.Mutex
	clients []*mqttclient.Client // the current connection of each client
	addr    []string             // by client, the address of its current connection (its supervisor's)

	// By client, ns since d.epoch (0: not yet): when its connection ended, when it was
	// back, when it had its backlog.
	droppedAt, backAt, drainedAt []atomic.Int64
	// By stream: 1 + the highest seq accepted (the sender's side) and first received;
	// and the mark a stream must reach to count as drained (1 + the highest seq accepted
	// when its client was back).
	lastAcc, lastRecv, mark []atomic.Int64
}

func newFailover(d *direct) *failover {
	n, s := d.cfg.Clients, len(d.lanes)
	ctx, end := context.WithCancel(context.Background())
	return &failover{
		d: d, stop: make(chan struct{}), ctx: ctx, end: end, clients: make([]*mqttclient.Client, n), addr: make([]string, n),
		droppedAt: make([]atomic.Int64, n), backAt: make([]atomic.Int64, n), drainedAt: make([]atomic.Int64, n),
		lastAcc: make([]atomic.Int64, s), lastRecv: make([]atomic.Int64, s), mark: make([]atomic.Int64, s),
	}
}

// watch starts client i's supervisor for its first connection c, to addr.
func (f *failover) watch(i int, c *mqttclient.Client, addr string) {
	f.mu.Lock()
	f.clients[i] = c
	f.mu.Unlock()
	f.addr[i] = addr
	f.wg.Add(1)
	go func() { defer f.wg.Done(); f.supervise(i, c) }()
}

// supervise reconnects client i each time its connection ends, until the run stops.
func (f *failover) supervise(i int, c *mqttclient.Client) {
	d := f.d
	for {
		select {
		case <-f.stop:
			return
		case <-c.Done():
		}
		now := int64(time.Since(d.epoch))
		f.since.CompareAndSwap(0, now)
		f.droppedAt[i].CompareAndSwap(0, now)
		f.backAt[i].Store(0)
		lost := f.addr[i]
		backoff := d.cfg.ReconnectJitter
		wait := rand.N(backoff) // the first try spreads the storm over the jitter
		for attempt := 0; ; attempt++ {
			select {
			case <-f.stop:
				return
			case <-time.After(wait):
			}
			if f.stopped() {
				return
			}
			addr := f.pick(lost, attempt)
			nc, err := d.dialClient(f.ctx, i, addr)
			if err == nil {
				f.addr[i] = addr
				f.back(i, nc)
				c = nc
				break
			}
			if f.fails.Add(1) <= maxExamples {
				f.errMu.Lock()
				f.dialErr = append(f.dialErr, err.Error())
				f.errMu.Unlock()
			}
			backoff = min(2*backoff, 30*time.Second)
			wait = rand.N(backoff)
		}
	}
}

// pick is the address a client that lost lost dials on its attempt-th try: another node,
// at random, then any of them.
func (f *failover) pick(lost string, attempt int) string {
	addrs := f.d.cfg.ReconnectMQTT
	if len(addrs) == 0 {
		addrs = f.d.cfg.MQTT
	}
	others := slices.DeleteFunc(slices.Clone(addrs), func(a string) bool { return a == lost })
	if len(others) == 0 || attempt >= 2*len(others) {
		others = addrs
	}
	return others[rand.N(len(others))]
}

// back records that client i is connected and subscribed again as nc, then starts it: its
// drain mark is what was accepted for it by now.
func (f *failover) back(i int, nc *mqttclient.Client) {
	now := int64(time.Since(f.d.epoch))
	f.mu.Lock()
	f.clients[i] = nc
	f.mu.Unlock()
	drained := true
	for _, s := range f.d.streamsOf(i) {
		m := f.lastAcc[s].Load()
		f.mark[s].Store(m)
		if f.lastRecv[s].Load() < m {
			drained = false
		}
	}
	if drained {
		f.drainedAt[i].CompareAndSwap(0, now)
	}
	f.backAt[i].Store(now)
	nc.Start()
}

// accepted records, on the sender side, that seq of stream was accepted.
func (f *failover) accepted(stream int, seq uint32) {
	if v := int64(seq) + 1; v > f.lastAcc[stream].Load() {
		f.lastAcc[stream].Store(v)
	}
}

// received records, on client's reader, the first receipt of seq of stream.
func (f *failover) received(client, stream int, seq uint32, now time.Duration) {
	v := int64(seq) + 1
	if v > f.lastRecv[stream].Load() {
		f.lastRecv[stream].Store(v)
	}
	if m := f.mark[stream].Load(); m > 0 && v >= m && f.backAt[client].Load() != 0 {
		f.drainedAt[client].CompareAndSwap(0, int64(now))
	}
}

// startKill SIGKILLs pid delay after start, unless the run stops first.
func (f *failover) startKill(pid int, start time.Time, delay time.Duration) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		t := time.NewTimer(time.Until(start.Add(delay)))
		defer t.Stop()
		select {
		case <-f.stop:
			f.killErr = fmt.Errorf("KillPID %d: the run ended before KillAfter", pid)
			return
		case <-t.C:
		}
		// The kill's time is the clock every figure counts from, whatever dropped first.
		f.since.Store(int64(time.Since(f.d.epoch)))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			f.killErr = fmt.Errorf("KillPID %d: %w", pid, err)
		}
	}()
}

func (f *failover) stopped() bool {
	select {
	case <-f.stop:
		return true
	default:
		return false
	}
}

// allBack reports whether every client that dropped is connected again.
func (f *failover) allBack() bool {
	for i := range f.droppedAt {
		if f.droppedAt[i].Load() != 0 && f.backAt[i].Load() == 0 {
			return false
		}
	}
	return true
}

// shutdown stops the supervisors and hands back each client's current connection.
// Idempotent.
func (f *failover) shutdown() []*mqttclient.Client {
	f.once.Do(func() { close(f.stop); f.end(); f.wg.Wait() })
	return f.clients
}

// stats works out the figures once the supervisors have stopped.
func (f *failover) stats(pid int, start time.Time) *FailoverStats {
	fs := &FailoverStats{KilledPID: pid, FailedDials: f.fails.Load(), DialErrors: f.dialErr}
	since := f.since.Load()
	if pid > 0 && since > 0 {
		fs.KilledAt = (time.Duration(since) - start.Sub(f.d.epoch)).Seconds()
	}
	var backs []float64
	complete, drainedAll := true, true
	var lastDrain int64
	for i := range f.droppedAt {
		if f.droppedAt[i].Load() == 0 {
			continue
		}
		fs.Dropped++
		b := f.backAt[i].Load()
		if b == 0 {
			complete = false
			continue
		}
		fs.Reconnected++
		backs = append(backs, time.Duration(b-since).Seconds())
		if dr := f.drainedAt[i].Load(); dr == 0 {
			drainedAll = false
		} else {
			lastDrain = max(lastDrain, dr)
		}
	}
	fs.Back = spreadOf(backs)
	if complete {
		fs.AllBack = fs.Back.Max
	}
	if complete && drainedAll && lastDrain > 0 {
		fs.Drained = time.Duration(lastDrain - since).Seconds()
	}
	return fs
}
