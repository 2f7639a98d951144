// Package store holds what Switchboard must not lose or confuse: presence (which node each
// connected client id is on, fenced by a per-connection session token), mailboxes (a
// durable FIFO of messages per client id) and node notices (durable hints a node reads
// within its delivery lease: "client X's mailbox has messages", "session S of client X was
// taken over"). It is an interface with one implementation per backend (store/redisstore
// for Redis, store/embedded for `switchboard up`); every implementation passes the
// behaviour suite in store/storetest.
//
// Every presence and mailbox operation touches one client's keys only, so each can be
// atomic on one shard (Redis Cluster hash tags), and a client's operations are
// linearizable. Notices live under their node's own key.
//
// # One clock
//
// Expiry is judged on the store's clock alone. Callers hand over and get back durations
// (Message.TTL: the time a message has left), never instants, so no other machine's clock
// can expire an accepted message early: a router or node whose clock is off by hours
// stores and reads the same message as one whose clock is right.
package store

import (
	"context"
	"errors"
	"fmt"
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
	ID      string
	To      string
	Topic   string
	Payload []byte
	QoS     byte
	// Accepted is when a router accepted the message, on that router's clock. It is
	// informational only: nothing is decided by it.
	Accepted time.Time
	// TTL is the time the message has left to live. On Append it counts from the moment
	// the store writes the message (the store turns it into an expiry on its own clock);
	// on Peek it is what is left at the moment the store read it, always positive: an
	// expired message is never returned.
	TTL time.Duration
	// Seq is the message's position in its mailbox, set by the store: strictly
	// increasing in append order for one client, and never reused for that client, even
	// after its mailbox emptied or expired. Append ignores it.
	Seq uint64
}

// AppendResult tells what Append did with one message.
type AppendResult struct {
	// Seq is the message's position: the new one, or the one of the copy already there
	// (Duplicate). Zero when Err is set.
	Seq uint64
	// Depth is the mailbox depth after the append.
	Depth int
	// Duplicate is true when a message with the same id was already in the mailbox;
	// nothing was added. A duplicate is not an error: the message is in the mailbox.
	Duplicate bool
	// Err is why this message was not added: it wraps ErrMailboxFull or ErrStoreFull.
	Err error
	// Presence is the client's presence read in the same atomic step as the append, so a
	// caller can tell the client's node: a client that connected before the append is
	// named here, one that connects after it reads its mailbox on connect.
	Presence Presence
}

// Removal names messages to delete from one client's mailbox.
type Removal struct {
	Client string
	IDs    []string
}

// NoticeKind says what a notice asks of its node.
type NoticeKind byte

const (
	// NoticeMailbox: the client's mailbox holds messages the node may not know of; if the
	// client is connected there, read its mailbox before sending anything newer.
	NoticeMailbox NoticeKind = 1
	// NoticeRevoke: the client took over its session elsewhere; if Session is connected
	// there, send it nothing more and disconnect it.
	NoticeRevoke NoticeKind = 2
)

// Notice is one durable hint for a node.
type Notice struct {
	Kind    NoticeKind
	Client  string
	Session string // NoticeRevoke: the session taken over; NoticeMailbox: empty
}

// Store is the presence table, the mailboxes and the node notices. All methods are safe
// for concurrent use; all take a context that bounds the call.
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

	// Append adds each message at the tail of its recipient's mailbox, in slice order
	// (msgs may name many clients; one client's messages keep their order), unless a
	// message with the same id is already in that mailbox (Duplicate) or the mailbox holds
	// limit messages (Err wraps ErrMailboxFull). It returns one result per message. An
	// error means the call as a whole failed: any of the messages may or may not have
	// been added, and a retry of the same messages is safe (ids are recognised).
	Append(ctx context.Context, limit int, msgs []Message) ([]AppendResult, error)
	// Peek returns up to n messages (at most 1000) of the client's mailbox whose Seq is
	// greater than after, oldest first. Expired messages are never returned; those at
	// the head are deleted.
	Peek(ctx context.Context, client string, after uint64, n int) ([]Message, error)
	// Remove deletes the named messages from their mailboxes, wherever they are in them.
	// Ids that are not there are ignored, so removing twice changes nothing.
	Remove(ctx context.Context, items ...Removal) error
	// Depth returns the number of messages in the client's mailbox.
	Depth(ctx context.Context, client string) (int, error)

	// Notify appends notices for node. They stay until the node takes them (or for an
	// hour, in case the node is gone for good).
	Notify(ctx context.Context, node string, ns ...Notice) error
	// TakeNotices removes and returns up to max of node's notices, oldest first.
	TakeNotices(ctx context.Context, node string, max int) ([]Notice, error)

	// Ping checks that the backend answers.
	Ping(ctx context.Context) error
	// Close releases the store's connections. Idempotent.
	Close() error
}

// CheckAppend refuses an Append call no mailbox can take (a limit or a message that breaks
// the contract), before anything is written. Every implementation calls it first.
func CheckAppend(limit int, msgs []Message) error {
	if limit <= 0 {
		return fmt.Errorf("append: limit %d must be positive", limit)
	}
	for i, m := range msgs {
		switch {
		case m.To == "":
			return fmt.Errorf("append: message %d (%q): empty recipient", i, m.ID)
		case m.ID == "":
			return fmt.Errorf("append: message %d to %q: empty message id", i, m.To)
		case m.TTL <= 0:
			return fmt.Errorf("append %q to %q: TTL %v must be positive", m.ID, m.To, m.TTL)
		}
	}
	return nil
}

// Validate refuses a notice no node could act on.
func (n Notice) Validate() error {
	switch {
	case n.Kind != NoticeMailbox && n.Kind != NoticeRevoke:
		return fmt.Errorf("unknown kind %d", n.Kind)
	case n.Client == "":
		return errors.New("empty client id")
	}
	return nil
}
