package etcdcoord

import "github.com/switchboard-mqtt/switchboard/coord"

// StaleFence returns a leadership that still looks held locally but whose fence names a
// create revision the leader key does not have, so that tests reach the server-side check
// of a fenced write rather than the local short cut for a leadership already given up.
func StaleFence(l coord.Leadership) coord.Leadership {
	ll := l.(*leadership)
	return &leadership{c: ll.c, key: ll.key, rev: ll.rev + 1, done: make(chan struct{}), resign: make(chan struct{})}
}
