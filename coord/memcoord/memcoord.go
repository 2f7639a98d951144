// Package memcoord is a coord.Coordinator in memory for unit tests: a Cluster stands for the
// backend's servers, every Coordinator opened on it for one process's client with a session of
// its own. Registrations run coord's state machine like the real backends, and the package
// passes coord/coordtest like them. Nothing here is slow or cut off, so a registration is never
// Suspended by itself; ExpireSession ends a session as a backend would after a partition.
package memcoord

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// Cluster is the state every Coordinator opened on it shares: the servers. Use NewCluster.
type Cluster struct {
	// changed is bumped on every write; every waiter wakes and looks again (cheap at test sizes).
	changed  notify.Value[int64]
	sessions atomic.Int64 // the last session id given out

	mu         sync.Mutex
	rev        int64 // the last revision given out: epochs and candidates' order
	members    map[string]member
	marks      map[string]coord.Quarantine
	candidates map[string][]candidate // per election, in campaign order
}

type member struct {
	m    coord.Member // with Epoch set
	sess int64
}

type candidate struct {
	rev, sess int64
	value     string
}

// NewCluster returns an empty cluster.
func NewCluster() *Cluster {
	return &Cluster{
		members:    map[string]member{},
		marks:      map[string]coord.Quarantine{},
		candidates: map[string][]candidate{},
	}
}

// write runs f under the lock and wakes every waiter.
func (cl *Cluster) write(f func()) {
	cl.mu.Lock()
	f()
	cl.mu.Unlock()
	cl.changed.Update(func(n int64) int64 { return n + 1 })
}

// read runs f under the lock and returns a channel closed at the next write after it.
func (cl *Cluster) read(f func()) <-chan struct{} {
	_, ch := cl.changed.Get() // before the read: a write after it closes ch
	cl.mu.Lock()
	defer cl.mu.Unlock()
	f()
	return ch
}

// endSession deletes everything session sess owns, as a backend does.
func (cl *Cluster) endSession(sess int64) {
	cl.write(func() {
		maps.DeleteFunc(cl.members, func(_ string, e member) bool { return e.sess == sess })
		for name, cs := range cl.candidates {
			cl.candidates[name] = slices.DeleteFunc(cs, func(c candidate) bool { return c.sess == sess })
		}
	})
}

// Config configures a Coordinator.
type Config struct {
	// SessionTimeout stands for a backend's session timeout: a registration waits up to 1.5
	// times this for another process's entry to go before it fails with ErrDuplicate. Default 1s.
	SessionTimeout time.Duration
	// Logger receives the coordinator's logs. Default slog.Default().
	Logger *slog.Logger
}

// Coordinator is one client of a Cluster, with a session of its own.
type Coordinator struct {
	cl      *Cluster
	log     *slog.Logger
	timeout time.Duration
	sess    notify.Value[int64] // the current session id
	g       *coord.Group
}

var _ coord.Coordinator = (*Coordinator)(nil)

// Open returns a new client of cl with a fresh session.
func (cl *Cluster) Open(cfg Config) *Coordinator {
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = time.Second
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	c := &Coordinator{cl: cl, log: cfg.Logger.With("component", "memcoord"), timeout: cfg.SessionTimeout, g: coord.NewGroup()}
	c.sess.Set(cl.sessions.Add(1))
	return c
}

// ExpireSession ends the client's session and starts a new one, as a backend would: its entries
// and candidates vanish, its registrations are fenced and come back under new epochs.
func (c *Coordinator) ExpireSession() {
	old := c.sess.Load()
	c.sess.Set(c.cl.sessions.Add(1))
	c.cl.endSession(old)
}

// Close ends the session, with every entry and candidate of this client.
func (c *Coordinator) Close() error {
	c.g.Close(func() { c.cl.endSession(c.sess.Load()) })
	return nil
}

// wait waits for ch, ctx or Close; false unless ch fired.
func (c *Coordinator) wait(ctx context.Context, ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-ctx.Done():
	case <-c.g.Closed():
	}
	return false
}

// Members lists the live members, in id order.
func (c *Coordinator) Members(context.Context) ([]coord.Member, error) {
	ms, _ := c.cl.memberList()
	return ms, nil
}

// memberList and markList read a list, with a channel closed at the next write.
func (cl *Cluster) memberList() ([]coord.Member, <-chan struct{}) {
	return byKey(cl, cl.members, func(e member) coord.Member { return e.m })
}

func (cl *Cluster) markList() ([]coord.Quarantine, <-chan struct{}) {
	return byKey(cl, cl.marks, func(q coord.Quarantine) coord.Quarantine { return q })
}

// byKey reads what f makes of m's values under cl's lock, in key order.
func byKey[V, T any](cl *Cluster, m map[string]V, f func(V) T) (out []T, changed <-chan struct{}) {
	changed = cl.read(func() {
		out = make([]T, 0, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, f(m[k]))
		}
	})
	return out, changed
}

// WatchMembers delivers the live member set now and after every change.
func (c *Coordinator) WatchMembers(ctx context.Context) (<-chan []coord.Member, error) {
	return watch(ctx, c, (*Cluster).memberList)
}

// Quarantines lists the standing marks, in node order.
func (c *Coordinator) Quarantines(context.Context) ([]coord.Quarantine, error) {
	qs, _ := c.cl.markList()
	return qs, nil
}

// WatchQuarantines delivers the standing marks now and after every change.
func (c *Coordinator) WatchQuarantines(ctx context.Context) (<-chan []coord.Quarantine, error) {
	return watch(ctx, c, (*Cluster).markList)
}

func watch[T any](ctx context.Context, c *Coordinator, list func(*Cluster) ([]T, <-chan struct{})) (<-chan []T, error) {
	return coord.Deliver(ctx, c.g, func(ctx context.Context, send func([]T)) bool {
		for {
			set, changed := list(c.cl)
			send(set)
			if !c.wait(ctx, changed) {
				return false
			}
		}
	})
}

// SetQuarantine writes a mark; with a fence, only while its candidate stands, in the same step.
func (c *Coordinator) SetQuarantine(_ context.Context, q coord.Quarantine, fence coord.Leadership) error {
	data, err := coord.EncodeQuarantine(q) // stored encoded: a reader gets a copy, never q
	if err != nil {
		return err
	}
	var l *ballot
	if fence != nil {
		if l, err = coord.FenceOf(fence, func(b *ballot) bool { return b.c == c }); err != nil {
			return fmt.Errorf("quarantine %s: %w", q.Node, err)
		}
	}
	c.cl.write(func() {
		if l != nil && !slices.ContainsFunc(c.cl.candidates[l.election], l.is) {
			err = fmt.Errorf("quarantine %s: %w", q.Node, coord.ErrNotLeader)
			return
		}
		c.cl.marks[q.Node] = coord.ParseQuarantine(q.Node, data)
	})
	return err
}

// Release deletes a mark; coord.ErrNotFound if there is none.
func (c *Coordinator) Release(_ context.Context, node string) (err error) {
	if err := coord.ValidateID(node); err != nil {
		return err
	}
	c.cl.write(func() {
		if _, found := c.cl.marks[node]; !found {
			err = fmt.Errorf("release %s: %w", node, coord.ErrNotFound)
		}
		delete(c.cl.marks, node)
	})
	return err
}
