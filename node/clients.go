package node

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/auth"
)

// clientState is what the node knows of one MQTT connection beyond mochi's own state.
type clientState struct {
	id      string
	cl      *mqtt.Client
	session string // presence fencing token, unique per connection
	ident   *auth.Identity
	expiry  *time.Timer // disconnects a token-authenticated client when its token expires

	connected atomic.Bool  // presence written
	epoch     atomic.Int64 // the node epoch its presence is confirmed under; sends need the live one
	ready     atomic.Bool  // subscribed to its inbox: directed messages may be sent
	// inboxIDs are the Subscription Identifiers of its inbox subscriptions (nil if none).
	inboxIDs atomic.Pointer[[]int]
	revoked  atomic.Bool // taken over elsewhere: nothing more is sent to it
	// willDropped: its credentials were revoked, and its Will goes nowhere (see authLoop).
	willDropped atomic.Bool
	// willProps are its Will's MQTT 5 properties that mochi's Will lacks (see checkWill).
	willProps packets.Properties
	// subscribing: mochi is checking a SUBSCRIBE's filters (OnSubscribe to OnSubscribed),
	// so a read ACL check names a filter being subscribed, not a message to deliver.
	subscribing atomic.Bool
	// overQuota are the indexes of the filters of the SUBSCRIBE being handled that are over
	// the session's limits (OnSubscribe to OnSubscribed, on the client's own goroutine).
	overQuota []int
	gone      chan struct{}
	goneOnce  sync.Once
	// keeps: the session outlives this connection, as its CONNECT asked (a session expiry,
	// or 3.1.1's clean session 0); read on the client's goroutine before any DISCONNECT.
	keeps bool
	// prev is the connection of the same id here that this one took over (nil if none),
	// whose session mochi resumes (see orderResend).
	prev *clientState

	ob *outbox // directed messages on their way to this connection
}

func newClientState(id string, cl *mqtt.Client, session string) *clientState {
	st := &clientState{id: id, cl: cl, session: session, gone: make(chan struct{})}
	st.ob = newOutbox(st)
	return st
}

// markGone records that the connection ended.
func (s *clientState) markGone() {
	s.goneOnce.Do(func() {
		close(s.gone)
		if s.expiry != nil {
			s.expiry.Stop()
		}
	})
}

// clientTable indexes client states by client id (the current connection), by session
// token and by mochi client (every connection, including one being taken over or one
// whose CONNECT is still being handled), and by network connection (to clean up after a
// recovered panic). A revocation names a session, so it is found by token whichever
// connection of the id is current; a mailbox notice is for every connection of the id.
type clientTable struct {
	mu        sync.RWMutex
	byID      map[string]*clientState
	byCl      map[*mqtt.Client]*clientState
	byConn    map[net.Conn]*clientState
	bySession map[string]*clientState
	ofID      map[string][]*clientState // every connection of an id, usually one
}

func newClientTable() *clientTable {
	return &clientTable{
		byID:      map[string]*clientState{},
		byCl:      map[*mqtt.Client]*clientState{},
		byConn:    map[net.Conn]*clientState{},
		bySession: map[string]*clientState{},
		ofID:      map[string][]*clientState{},
	}
}

// add makes s the current connection for its id and returns the one it replaced, if any.
func (t *clientTable) add(s *clientState) *clientState {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.byID[s.id]
	t.byID[s.id] = s
	t.byCl[s.cl] = s
	t.bySession[s.session] = s
	t.ofID[s.id] = append(t.ofID[s.id], s)
	if s.cl.Net.Conn != nil {
		t.byConn[s.cl.Net.Conn] = s
	}
	return old
}

// putBack makes s the current connection for its id again if none is (a newer one that
// replaced it was refused), unless its connection has ended.
func (t *clientTable) putBack(s *clientState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-s.gone:
		return
	default:
	}
	if _, ok := t.byCl[s.cl]; !ok {
		return // forgotten meanwhile
	}
	if _, ok := t.byID[s.id]; !ok {
		t.byID[s.id] = s
	}
}

// remove forgets s; the id entry only if s is still the current connection.
func (t *clientTable) remove(s *clientState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID[s.id] == s {
		delete(t.byID, s.id)
	}
	delete(t.byCl, s.cl)
	if t.bySession[s.session] == s {
		delete(t.bySession, s.session)
	}
	if l := t.ofID[s.id]; len(l) > 0 {
		keep := l[:0]
		for _, x := range l {
			if x != s {
				keep = append(keep, x)
			}
		}
		if len(keep) == 0 {
			delete(t.ofID, s.id)
		} else {
			t.ofID[s.id] = keep
		}
	}
	if s.cl.Net.Conn != nil {
		delete(t.byConn, s.cl.Net.Conn)
	}
}

func (t *clientTable) get(id string) *clientState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byID[id]
}

// session returns the connection of client with session token session, if it is here.
func (t *clientTable) session(client, session string) *clientState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := t.bySession[session]
	if s == nil || s.id != client {
		return nil
	}
	return s
}

// connectionsOf returns every connection of the id (the current one, one being taken
// over, one whose CONNECT is being handled).
func (t *clientTable) connectionsOf(id string) []*clientState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return append([]*clientState(nil), t.ofID[id]...)
}

func (t *clientTable) byClient(cl *mqtt.Client) *clientState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byCl[cl]
}

func (t *clientTable) byNetConn(c net.Conn) *clientState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byConn[c]
}

// all returns every connection, current or not.
func (t *clientTable) all() []*clientState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*clientState, 0, len(t.byCl))
	for _, s := range t.byCl {
		out = append(out, s)
	}
	return out
}

// len is the number of client ids connected.
func (t *clientTable) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.byID)
}

// keyedMutex serialises work per key (here: the CONNECT handling of one client id, so
// that the client table, mochi's session table and the presence always name the same
// connection). Keys nobody holds cost nothing.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedLock
}

type keyedLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns its unlock, which may be called once.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyedLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Unlock()
			k.mu.Lock()
			l.refs--
			if l.refs == 0 {
				delete(k.m, key)
			}
			k.mu.Unlock()
		})
	}
}
