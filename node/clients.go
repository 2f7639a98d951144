package node

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/switchboard-mqtt/switchboard/auth"
)

// clientState is what the node knows of one MQTT connection beyond mochi's own state.
type clientState struct {
	id      string
	cl      *mqtt.Client
	session string // presence fencing token, unique per connection
	ident   *auth.Identity
	expiry  *time.Timer // disconnects a token-authenticated client when its token expires

	connected atomic.Bool // presence written
	ready     atomic.Bool // subscribed to its inbox: directed messages may be sent
	gone      chan struct{}
	goneOnce  sync.Once

	// sendMu serialises sends to the client (direct deliveries and drain batches), so
	// messages leave in the order they were handed over.
	sendMu sync.Mutex

	mu       sync.Mutex
	waiters  map[uint16]chan bool // packet id → PUBACK (true) or drop (false)
	draining bool
	again    bool // a drain was asked for while one ran
}

func newClientState(id string, cl *mqtt.Client, session string) *clientState {
	return &clientState{id: id, cl: cl, session: session, gone: make(chan struct{}), waiters: map[uint16]chan bool{}}
}

// markGone records that the connection ended and fails every waiter.
func (s *clientState) markGone() {
	s.goneOnce.Do(func() {
		close(s.gone)
		if s.expiry != nil {
			s.expiry.Stop()
		}
	})
}

func (s *clientState) addWaiter(id uint16) chan bool {
	ch := make(chan bool, 1)
	s.mu.Lock()
	s.waiters[id] = ch
	s.mu.Unlock()
	return ch
}

func (s *clientState) removeWaiter(id uint16) {
	s.mu.Lock()
	delete(s.waiters, id)
	s.mu.Unlock()
}

// complete resolves the waiter for packet id, if any.
func (s *clientState) complete(id uint16, acked bool) {
	s.mu.Lock()
	ch, ok := s.waiters[id]
	delete(s.waiters, id)
	s.mu.Unlock()
	if ok {
		ch <- acked
	}
}

// clientTable indexes client states by client id (the current connection), by mochi client
// (every connection, including one being taken over) and by network connection (to clean
// up after a recovered panic).
type clientTable struct {
	mu     sync.RWMutex
	byID   map[string]*clientState
	byCl   map[*mqtt.Client]*clientState
	byConn map[net.Conn]*clientState
}

func newClientTable() *clientTable {
	return &clientTable{
		byID:   map[string]*clientState{},
		byCl:   map[*mqtt.Client]*clientState{},
		byConn: map[net.Conn]*clientState{},
	}
}

// add makes s the current connection for its id.
func (t *clientTable) add(s *clientState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byID[s.id] = s
	t.byCl[s.cl] = s
	if s.cl.Net.Conn != nil {
		t.byConn[s.cl.Net.Conn] = s
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
	if s.cl.Net.Conn != nil {
		delete(t.byConn, s.cl.Net.Conn)
	}
}

func (t *clientTable) get(id string) *clientState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byID[id]
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

// all returns the current connections.
func (t *clientTable) all() []*clientState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*clientState, 0, len(t.byID))
	for _, s := range t.byID {
		out = append(out, s)
	}
	return out
}

func (t *clientTable) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.byID)
}
