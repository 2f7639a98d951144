package wire

import "context"

// Handler handles requests on a node. Methods are called concurrently from many goroutines
// and may block (Deliver waits for the client's PUBACK); ctx ends when the connection or the
// server closes, and a method must return soon after, because Server.Close waits for it.
// The Seq of the returned Result is ignored: the server answers with the request's.
// A panic is recovered and answered with StatusFailed.
type Handler interface {
	Deliver(ctx context.Context, d Deliver) Result
	Kick(ctx context.Context, k Kick) Result
	Drain(ctx context.Context, d Drain) Result
}
