package router

import (
	"sync"

	"github.com/switchboard-mqtt/switchboard/store"
)

// routes remembers, per client, the presence last seen, so the next message can go
// straight to the client's node without reading the store. A stale entry costs a second
// attempt through the store, never a wrong delivery: an entry is used only while its node
// is live under the same epoch, and the node refuses a delivery for any other session of
// the client (or one taken over). Order does not depend on it: the client's node sequences
// its messages and reads the mailbox first whenever it may hold something (package lease).
//
// It holds at most max entries; when full, a random part of it is dropped.
type routes struct {
	mu  sync.Mutex
	max int
	m   map[string]store.Presence
}

func (r *routes) get(client string) (store.Presence, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.m[client]
	return p, ok
}

func (r *routes) put(client string, p store.Presence) {
	if r.max <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]store.Presence{}
	}
	if len(r.m) >= r.max {
		// Map iteration order is random: this drops an arbitrary eighth.
		n := r.max / 8
		for k := range r.m {
			if n <= 0 {
				break
			}
			delete(r.m, k)
			n--
		}
	}
	r.m[client] = p
}

func (r *routes) forget(client string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, client)
}
