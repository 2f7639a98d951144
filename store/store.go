// Package store holds what Switchboard must not lose or confuse: presence (which node each
// connected client id is on, fenced by a per-connection session token) and mailboxes (a
// durable FIFO of messages per client id). It is an interface with one implementation per
// backend (store/redisstore for Redis, the seed's choice); every implementation passes the
// behaviour suite in store/storetest.
//
// Every operation touches one client's keys only, so each can be atomic on one shard
// (Redis Cluster hash tags), and a client's operations are linearizable.
package store

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrMailboxFull means the client's mailbox holds its cap of messages; the new message
	// was refused and nothing older was dropped.
	ErrMailboxFull = errors.New("mailbox full")
	// ErrStoreFull means the backend refused the write for lack of memory or disk (Redis
	// with maxmemory-policy noeviction answers OOM instead of evicting mailboxes).
	ErrStoreFull = errors.New("store out of memory or disk")
	// ErrUnavailable means the backend could not be reached; nothing was written.
	ErrUnavailable = errors.New("store unavailable")
	// ErrNotOwner means the caller's session no longer owns the client's presence (the
	// client connected elsewhere since): the caller must stop acting for that client.
	ErrNotOwner = errors.New("session no longer owns the client")
)

// Presence says where a client id is connected.
type Presence struct {
	Client  string    `json:"client"`
	Node    string    `json:"node"`
	Epoch   int64     `json:"epoch"`   // the node's registration epoch when the client connected
	Session string    `json:"session"` // unique per connection; fences late writes by older ones
	Since   time.Time `json:"since"`
}

// Online reports whether p names a node (the zero Presence means offline).
func (p Presence) Online() bool { return p.Node != "" }

// Message is one directed message.
type Message struct {
	ID       string    `json:"id"`
	To       string    `json:"to"`
	Topic    string    `json:"topic"`
	Payload  []byte    `json:"payload"`
	QoS      byte      `json:"qos"`
	Accepted time.Time `json:"accepted"`
	Expires  time.Time `json:"expires"` // never zero: every message has an expiry
}

// Expired reports whether the message's expiry has passed at now.
func (m Message) Expired(now time.Time) bool { return !now.Before(m.Expires) }

// AppendResult tells what Append did.
type AppendResult struct {
	// Depth is the mailbox depth after the append.
	Depth int
	// Duplicate is true when a message with the same id was already in the mailbox; nothing
	// was added.
	Duplicate bool
	// Presence is the client's presence read in the same atomic step as the append, so a
	// caller can wake the client's node: a client that connected before the append is named
	// here, one that connects after it drains on connect.
	Presence Presence
}

// Store is the presence table and the mailboxes. All methods are safe for concurrent use;
// all take a context that bounds the call.
type Store interface {
	// Connect records p as the client's presence and returns the presence it replaced (the
	// zero Presence if none): the caller disconnects that older session if it is on
	// another node.
	Connect(ctx context.Context, p Presence) (prev Presence, err error)
	// Reassert updates the epoch of the client's presence if session still owns it;
	// ErrNotOwner otherwise. A node calls it for each client after it registers again
	// under a new epoch.
	Reassert(ctx context.Context, client, session string, epoch int64) error
	// Disconnect clears the client's presence if session still owns it, reporting whether
	// it did. A late disconnect on an old node never erases a newer session's presence.
	Disconnect(ctx context.Context, client, session string) (bool, error)
	// Lookup returns the client's presence and mailbox depth in one round trip.
	Lookup(ctx context.Context, client string) (Presence, int, error)
	// ClearNode clears the presence of every client whose presence names node at epoch,
	// and returns how many it cleared. It is the reaper's work when a node leaves.
	ClearNode(ctx context.Context, node string, epoch int64) (int, error)

	// Append adds m at the tail of m.To's mailbox unless a message with m.ID is already
	// there (Duplicate) or the mailbox holds limit messages (ErrMailboxFull).
	Append(ctx context.Context, m Message, limit int) (AppendResult, error)
	// Peek returns up to n messages from the head of the client's mailbox, oldest first.
	// Expired messages at the head are deleted, not returned.
	Peek(ctx context.Context, client string, n int) ([]Message, error)
	// Ack deletes the given messages (ids from a Peek, in order) from the head of the
	// client's mailbox if session still owns the client's presence; ErrNotOwner otherwise.
	// Ids no longer at the head are ignored (already acknowledged). It returns the depth
	// left.
	Ack(ctx context.Context, client, session string, ids []string) (int, error)
	// Depth returns the number of messages in the client's mailbox.
	Depth(ctx context.Context, client string) (int, error)

	// Ping checks that the backend answers.
	Ping(ctx context.Context) error
	// Close releases the store's connections. Idempotent.
	Close() error
}
