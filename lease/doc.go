// Package lease is how the rest of the cluster makes sure a broker node knows something
// before anyone acts on it, even when the node cannot be reached.
//
// Two things must reach the node that holds a client's session before the sender of a
// message or the client's new session may go on:
//
//   - "this client's mailbox holds messages": a message answered `queued` must not be
//     overtaken by a later message that goes to the client directly, and must not sit in
//     the mailbox unseen while the client stays connected;
//   - "this session was taken over elsewhere": the old session must receive nothing once
//     the new one is established, even if the takeover's kick is lost.
//
// The sender (a router, or a node) first tries the node directly over the wire protocol
// (Drain, Kick); the node answers only after it has acted. If that fails, the sender
// stores the same fact as a durable notice for the node (store.Notify) and waits out the
// node's delivery lease before going on.
//
// The node side is the Holder. Every Interval it takes its notices from the store and
// acts on them; a round of takes that succeeded keeps the lease valid until Duration after
// the first take of the round was sent. The node sends nothing to any client while its
// lease is not valid. So a notice stored at time t is seen by the node before it sends
// anything after t+Duration: any take that started before t cannot keep the lease past
// t+Duration, and any take that starts after t returns the notice. The argument needs
// only that clocks measure durations at the same rate (a lease's usual assumption), never
// that they agree on the time of day.
//
// A sender may also stop waiting as soon as the node's registration epoch it addressed has
// left the live set: a node fences itself (stops sending, see coord) before the
// coordinator can expire it, and it checks every client's session again before sending
// under a new epoch.
package lease
