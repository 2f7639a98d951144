// Package routes is the cluster's subscription table as one node sees it: which topic
// filters each node's clients subscribe to, so a publish on any node is forwarded to the
// nodes with a matching subscriber, and to no other.
//
// Each node is the authority for its own entries (the filters of its sessions, with how
// many sessions hold each) and pushes them to every other live node; a node's entries are
// kept under the registration epoch it pushed them with and dropped when that epoch leaves
// the live set. A shared subscription ("$share/<group>/<filter>") is an entry like any
// other: matching it yields every node with members of the group, so the publishing node
// can pick one member for the whole cluster.
package routes

import (
	"slices"
	"strings"
	"sync"
)

// Table is the subscription table. Its methods are safe for concurrent use.
type Table struct {
	self string

	mu    sync.RWMutex
	local map[string]int            // this node's filters -> sessions holding each
	subs  map[string]map[string]int // session (client id) -> its filters, counted once each
	ver   uint64                    // bumped on every change to local
	peers map[string]*peer          // other nodes' entries, by node id
	root  *level                    // every node's filters (this one's too), for matching
	track map[*Changes]struct{}     // who follows the changes to local
}

// Changes collects the local filters changed since its owner last took them, so a node
// that pushes its filters to another sends only those (see Table.Track).
type Changes struct {
	dirty map[string]struct{} // guarded by the table's mu
}

type peer struct {
	epoch   int64
	filters map[string]int
}

// New returns an empty table for the node self.
func New(self string) *Table {
	return &Table{
		self: self, local: map[string]int{}, subs: map[string]map[string]int{},
		peers: map[string]*peer{}, root: newLevel(), track: map[*Changes]struct{}{},
	}
}

// Track starts collecting the changes to this node's filters; Untrack stops it.
func (t *Table) Track() *Changes {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := &Changes{dirty: map[string]struct{}{}}
	t.track[c] = struct{}{}
	return c
}

// Untrack stops collecting for c.
func (t *Table) Untrack(c *Changes) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.track, c)
}

// Delta takes the filters changed since c was last taken, with their counts now (0 for
// a filter gone), and the local version they are at.
func (t *Table) Delta(c *Changes) (map[string]int, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := make(map[string]int, len(c.dirty))
	for f := range c.dirty {
		m[f] = t.local[f]
	}
	clear(c.dirty)
	return m, t.ver
}

// Full takes every local filter (and forgets c's changes: they are in it).
func (t *Table) Full(c *Changes) (map[string]int, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(c.dirty)
	m := make(map[string]int, len(t.local))
	for f, n := range t.local {
		m[f] = n
	}
	return m, t.ver
}

// changed marks filter changed for every tracker; the caller holds mu.
func (t *Table) changed(filter string) {
	for c := range t.track {
		c.dirty[filter] = struct{}{}
	}
}

// Subscribe records that client holds a subscription to filter on this node and returns
// the table's local version after it. Subscribing again to the same filter changes nothing.
func (t *Table) Subscribe(client, filter string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	fs := t.subs[client]
	if fs == nil {
		fs = map[string]int{}
		t.subs[client] = fs
	}
	if _, ok := fs[filter]; ok {
		return t.ver
	}
	fs[filter] = 1
	t.local[filter]++
	if t.local[filter] == 1 {
		t.root.add(filter, t.self)
	}
	t.changed(filter)
	t.ver++
	return t.ver
}

// Unsubscribe removes client's subscription to filter; it returns the local version.
func (t *Table) Unsubscribe(client, filter string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	fs := t.subs[client]
	if _, ok := fs[filter]; !ok {
		return t.ver
	}
	delete(fs, filter)
	if len(fs) == 0 {
		delete(t.subs, client)
	}
	t.dropLocal(filter)
	t.ver++
	return t.ver
}

// Forget removes every subscription of client (its session ended).
func (t *Table) Forget(client string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	fs := t.subs[client]
	if len(fs) == 0 {
		return t.ver
	}
	delete(t.subs, client)
	for f := range fs {
		t.dropLocal(f)
	}
	t.ver++
	return t.ver
}

func (t *Table) dropLocal(filter string) {
	t.changed(filter)
	if t.local[filter]--; t.local[filter] <= 0 {
		delete(t.local, filter)
		t.root.remove(filter, t.self)
	}
}

// Local returns a copy of this node's filters with their session counts, and the version
// they are at.
func (t *Table) Local() (map[string]int, uint64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	m := make(map[string]int, len(t.local))
	for f, n := range t.local {
		m[f] = n
	}
	return m, t.ver
}

// LocalCount returns how many sessions on this node hold filter, and the local version.
func (t *Table) LocalCount(filter string) (int, uint64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.local[filter], t.ver
}

// Version is the local version: it changes whenever this node's filters do.
func (t *Table) Version() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.ver
}

// Apply records what node (under epoch) says of its filters: with full, they are all of
// them (every filter not named is gone); otherwise each named filter's count is set (0
// removes it). Entries of an older epoch of node are replaced; an update for an epoch
// older than the one held is ignored and Apply reports false.
func (t *Table) Apply(node string, epoch int64, full bool, counts map[string]int) bool {
	if node == t.self {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[node]
	switch {
	case p != nil && epoch < p.epoch:
		return false
	case p != nil && epoch > p.epoch:
		t.dropPeer(node, p)
		p = nil
	}
	if p == nil {
		p = &peer{epoch: epoch, filters: map[string]int{}}
		t.peers[node] = p
	}
	if full {
		for f := range p.filters {
			if _, ok := counts[f]; !ok {
				delete(p.filters, f)
				t.root.remove(f, node)
			}
		}
	}
	for f, n := range counts {
		_, had := p.filters[f]
		switch {
		case n <= 0 && had:
			delete(p.filters, f)
			t.root.remove(f, node)
		case n > 0:
			p.filters[f] = n
			if !had {
				t.root.add(f, node)
			}
		}
	}
	return true
}

// Drop removes node's entries if they are of the given epoch or older (0: any epoch).
func (t *Table) Drop(node string, epoch int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[node]; p != nil && (epoch == 0 || p.epoch <= epoch) {
		t.dropPeer(node, p)
	}
}

func (t *Table) dropPeer(node string, p *peer) {
	for f := range p.filters {
		t.root.remove(f, node)
	}
	delete(t.peers, node)
}

// Peers returns the nodes whose entries the table holds, with their epochs.
func (t *Table) Peers() map[string]int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	m := make(map[string]int64, len(t.peers))
	for id, p := range t.peers {
		m[id] = p.epoch
	}
	return m
}

// PeerFilters returns how many filters node's entries hold.
func (t *Table) PeerFilters(node string) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if p := t.peers[node]; p != nil {
		return len(p.filters)
	}
	return 0
}

// Group is one shared subscription matching a topic: the nodes with members of it, and
// how many sessions each has.
type Group struct {
	Key   string // the whole filter, "$share/<group>/<filter>"
	Nodes map[string]int
}

// Match returns the other nodes with a (non-shared) subscription matching topic, and every
// shared subscription in the cluster matching it, with the nodes holding members (this node
// included). Filters that begin with a wildcard do not match topics that begin with "$"
// [MQTT-4.7.2-1].
func (t *Table) Match(topic string) (nodes []string, groups []Group) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var byKey map[string]*Group
	t.root.match(strings.Split(topic, "/"), 0, strings.HasPrefix(topic, "$"), func(e *entries) {
		for n := range e.plain {
			if n != t.self && !slices.Contains(nodes, n) { // a cluster has a handful of nodes
				nodes = append(nodes, n)
			}
		}
		for key, ns := range e.shared {
			if byKey == nil {
				byKey = map[string]*Group{}
			}
			g := byKey[key]
			if g == nil {
				g = &Group{Key: key, Nodes: map[string]int{}}
				byKey[key] = g
			}
			for n := range ns {
				g.Nodes[n] = t.count(n, key)
			}
		}
	})
	for _, g := range byKey {
		groups = append(groups, *g)
	}
	return nodes, groups
}

// count is how many sessions node has on filter; the caller holds mu.
func (t *Table) count(node, filter string) int {
	if node == t.self {
		return t.local[filter]
	}
	if p := t.peers[node]; p != nil {
		return p.filters[filter]
	}
	return 0
}

// SplitShared splits "$share/<group>/<filter>" into the group and the filter; ok is false
// for a filter that is not a shared one.
func SplitShared(filter string) (group, rest string, ok bool) {
	s, found := strings.CutPrefix(filter, "$share/")
	if !found {
		return "", "", false
	}
	group, rest, found = strings.Cut(s, "/")
	return group, rest, found && group != "" && rest != ""
}
