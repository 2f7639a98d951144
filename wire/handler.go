package wire

import "context"

// Handler handles requests on a node. Every method is called on the connection's reader
// goroutine, one at a time and in the order the requests arrived, and must not block: a
// handler that has to wait (for a client's PUBACK, for the store) answers later.
//
// Deliver must call reply exactly once for every message of d (i from 0 to len(d.Msgs)-1),
// from any goroutine, before or after Deliver returns; reply never blocks. Replies for a
// connection that has ended are discarded. ctx ends when the connection or the server
// closes.
//
// Kick and Drain answer at once. The Seq of a returned Result is ignored: the server
// answers with the request's. A panic is recovered and answered with StatusFailed (for a
// Deliver, every message not answered yet).
type Handler interface {
	Deliver(ctx context.Context, d Deliver, reply func(i int, r Result))
	Kick(ctx context.Context, k Kick) Result
	Drain(ctx context.Context, d Drain) Result
}
