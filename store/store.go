// Package store holds what Switchboard must not lose or confuse: presence (which node each
// connected client id is on, fenced by a per-connection session token), mailboxes (a
// durable FIFO of messages per client id), node notices (durable hints a node reads
// within its delivery lease: "client X's mailbox has messages", "session S of client X was
// taken over") and the cluster's retained MQTT messages, one per topic. It is an interface
// with one implementation per backend (store/redisstore for Redis, store/embedded for
// `switchboard up`); every implementation passes the behaviour suite in store/storetest.
//
// Every presence and mailbox operation touches one client's keys only, so each can be
// atomic on one shard (Redis Cluster hash tags), and a client's operations are
// linearizable. Notices live under their node's own keys. The retained messages are one
// set with one version counter for the whole cluster (on Redis Cluster, on one shard).
//
// # Nothing lost on a lost answer
//
// Every call may fail after the store did its work (a timeout whose answer came too
// late), and a retry of the same call is always safe. Two things are kept until their
// owner confirms them, so that such a failure loses neither:
//
//   - A node's notices stay after TakeNotices returns them, until the node confirms them
//     by sequence number with DoneNotices: a take whose answer is lost loses nothing, the
//     next take returns the same notices again.
//   - A takeover (a Connect that replaced a presence on another node) is recorded with the
//     client until the new session confirms it with ConfirmTakeover, after it made sure
//     the replaced session receives nothing more. Until then every later Connect of the
//     client returns it in ConnectResult.Pending, even after the session that took over
//     disconnected or its node was reaped: a node that could not take a session over and
//     so refused the connection does not erase what must still be revoked.
//
// # One clock
//
// Expiry is judged on the store's clock alone. Callers hand over and get back durations
// (Message.TTL, Retained.TTL: the time a message has left), never instants, so no other
// machine's clock can expire an accepted message early: a router or node whose clock is
// off by hours stores and reads the same message as one whose clock is right.
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
	// ErrUnavailable means the backend could not be reached, or could not confirm a write
	// as durable in time: the write is not acknowledged, but it may have been applied
	// (a timed-out call, a wait for replicas not satisfied), so a retry must be safe to
	// repeat — every store operation is.
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

// MaxPending is the most sessions ConnectResult.Pending holds: the newest ones. A client
// whose takeovers went unconfirmed more often than that in a row loses the oldest.
const MaxPending = 8

// ConnectResult is what Connect replaced.
type ConnectResult struct {
	// Prev is the presence Connect replaced: the zero Presence if there was none (the
	// client was offline, or only pending takeovers were recorded for it).
	Prev Presence
	// Pending are earlier sessions of the client whose takeover was never confirmed
	// (see ConfirmTakeover), oldest first, at most MaxPending, never Prev. Each may still
	// be connected on its node and must receive nothing more, as Prev must.
	Pending []Presence
}

// LookupResult is one client's part of LookupAll: what Lookup returns for it.
type LookupResult struct {
	Presence Presence
	Depth    int
	Err      error
}

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
	// Receipt asks for a terminal receipt (see Receipts): a store that keeps receipts
	// registers the message before Append writes it. It is not stored with the message
	// (Peek returns it false).
	Receipt bool
	// CollapseKey, when set, makes the message replace the client's queued message with
	// the same key (AppendResult.Collapsed names it; with receipts, its receipt is
	// ReceiptCollapsed). The new message goes at the tail. A client's mailbox holds at
	// most CollapseLimit distinct keys (0: no limit): a message with a new key past it is
	// refused (Err wraps ErrTooManyCollapseKeys). Neither is returned by Peek.
	CollapseKey   string
	CollapseLimit int
	// Priority is the message's lane (see Priorities); PriorityNormal unless the store
	// provides Priorities. Peek and PeekHigh return it set to their lane's.
	Priority Priority
}

// MaxCollapseKey is the longest collapse key, in bytes.
const MaxCollapseKey = 128

// ErrTooManyCollapseKeys means the client's mailbox holds messages under its limit of
// collapse keys, none of them the new message's; the message was refused.
var ErrTooManyCollapseKeys = errors.New("too many collapse keys")

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
	// Collapsed is the id of the older message with the same collapse key that this one
	// replaced in the mailbox ("" for none).
	Collapsed string
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
	// Seq is the notice's position among its node's notices, set by the store when it
	// stores the notice and returned by TakeNotices: strictly increasing in Notify order
	// for one node. DoneNotices confirms notices by it. Notify ignores it.
	Seq uint64
}

// NodeEpoch names one registration of a node: the node and the epoch it registered under.
type NodeEpoch struct {
	Node  string
	Epoch int64
}

// MaxRecordedEpochs caps the pairs one RecordedEpochs call returns.
const MaxRecordedEpochs = 1000

// Retained is one retained MQTT message of the cluster. Data is opaque to the store (the node
// encodes the message's QoS, payload and properties in it).
type Retained struct {
	Topic   string
	Data    []byte
	TTL     time.Duration // time left to live; 0: no expiry
	Version uint64        // set by the store: greater than that of every earlier change
}

const (
	// MaxRetainedTopic is the longest topic SetRetained takes, in bytes: MQTT's own limit
	// on a topic name.
	MaxRetainedTopic = 65535
	// MaxRetainedData is the largest Data SetRetained takes, in bytes: the nodes' default
	// MQTT packet size, 1 MiB, which bounds a retained message's payload and properties.
	MaxRetainedData = 1 << 20
)

// Validate refuses a retained message no store takes: an empty or overlong topic, Data
// over MaxRetainedData, a negative TTL. Every implementation of SetRetained calls it first.
func (r Retained) Validate() error {
	switch {
	case r.Topic == "":
		return errors.New("empty topic")
	case len(r.Topic) > MaxRetainedTopic:
		return fmt.Errorf("topic of %d bytes is over the maximum of %d", len(r.Topic), MaxRetainedTopic)
	case len(r.Data) > MaxRetainedData:
		return fmt.Errorf("topic %.64q: data of %d bytes is over the maximum of %d",
			r.Topic, len(r.Data), MaxRetainedData)
	case r.TTL < 0:
		return fmt.Errorf("topic %.64q: negative TTL %v", r.Topic, r.TTL)
	}
	return nil
}

// Store is the presence table, the mailboxes, the node notices and the retained messages.
// All methods are safe for concurrent use; all take a context that bounds the call.
type Store interface {
	// Connect records p as the client's presence and returns what it replaced: the
	// previous presence, and the takeovers still pending.
	//
	// When Prev is online on another node than p.Node, Connect records Prev as a pending
	// takeover of the client; the takeovers pending before are carried over too (and
	// returned in Pending). The caller makes sure that Prev and every session in Pending
	// receive nothing more (a revoke notice to their nodes, or a direct word), then calls
	// ConfirmTakeover. Until then every later Connect of the client returns them in
	// Pending, so a caller that fails half-way leaves them to the client's next Connect.
	// A caller must do the same for a Prev on its own node, which Connect does not record:
	// it takes over its own older session locally.
	//
	// A second Connect of the same session (a retry after a lost answer) returns what the
	// first returned, less what ConfirmTakeover confirmed since, and records no takeover.
	// Past MaxPending, the oldest pending takeovers are dropped (and logged): a client
	// that failed to take over its session that many times in a row has long left those
	// connections (a connection the client gave up ends by itself at its keep-alive), and
	// the node of one still open learns that it was taken over when it registers again
	// and its Reassert finds another session owning the presence.
	Connect(ctx context.Context, p Presence) (ConnectResult, error)
	// ConfirmTakeover clears the pending takeovers that session's Connect returned (its
	// Prev and Pending), if session still owns the presence: the caller made sure that
	// they receive nothing more. ErrNotOwner otherwise: a newer Connect carries them on
	// and returns them to its own caller. A presence Reassert recorded anew returned
	// nothing, so its session's ConfirmTakeover clears nothing. Idempotent.
	ConfirmTakeover(ctx context.Context, client, session string) error
	// Reassert records p again as the client's presence when p.Session is allowed to own
	// it: if p.Session owns the presence, its epoch and node become p's; if the client has
	// no presence (the reaper cleared it after the node left, or it was lost), p becomes
	// the presence, unless p.Session is among the client's pending takeovers (it was taken
	// over). ErrNotOwner otherwise: another session owns the presence, or p.Session was
	// taken over. A node calls it for each of its clients after it registers again under
	// a new epoch. Idempotent.
	Reassert(ctx context.Context, p Presence) error
	// Disconnect clears the client's presence if session still owns it, reporting whether
	// it did. A late disconnect on an old node never erases a newer session's presence.
	// The client's pending takeovers stay (see Connect): a session that disconnects
	// before it confirmed its takeover, as a node that could not tell the old session's
	// node and so refused the connection does, leaves them to the client's next Connect.
	Disconnect(ctx context.Context, client, session string) (bool, error)
	// Lookup returns the client's presence and mailbox depth in one round trip. A client
	// whose only record is pending takeovers is offline: the zero Presence.
	Lookup(ctx context.Context, client string) (Presence, int, error)
	// LookupAll is Lookup for each of clients, one result each in clients' order, in as
	// few round trips as the store can (a node's presence audit looks up every client it
	// holds). Each result has its own error: one client's failure is not the others'.
	LookupAll(ctx context.Context, clients []string) []LookupResult
	// ClearNode clears the presence of every client whose presence names node at epoch,
	// and returns how many it cleared. It is the reaper's work when a node leaves. The
	// clients' pending takeovers stay, as with Disconnect.
	ClearNode(ctx context.Context, node string, epoch int64) (int, error)
	// RecordedEpochs returns up to max (at most MaxRecordedEpochs) of the (node, epoch)
	// pairs under which presence may still be recorded, in the store's own order, starting
	// after the pair after (the zero NodeEpoch: from the first). Connect and Reassert
	// record their presence's pair before they write the presence; ClearNode forgets a
	// pair once it has cleared it. So the pair of a node that died while no reaper led
	// stays until a reaper clears it: a reaper that starts to lead compares the pairs with
	// the live set and clears those that left it. A pair may have no presence left (its
	// clients disconnected); clearing it clears nothing and forgets it.
	RecordedEpochs(ctx context.Context, after NodeEpoch, max int) ([]NodeEpoch, error)

	// Append adds each message at the tail of its recipient's mailbox, in slice order
	// (msgs may name many clients; one client's messages keep their order), unless a
	// message with the same id is already in that mailbox (Duplicate) or the mailbox holds
	// limit messages (Err wraps ErrMailboxFull). A store that keeps receipts registers
	// each message with Receipt set first (see Receipts), whatever the outcome of its
	// append. It returns one result per message. An
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
	// Mailboxes walks the non-empty mailboxes, one page per call, for operators' views (the
	// router's dashboard); see MailboxDepth for what a walk promises. Read only.
	Mailboxes(ctx context.Context, cursor string, n int) (page []MailboxDepth, next string, err error)

	// Notify appends notices for node, each given the next Seq. They stay until the node
	// confirms them with DoneNotices (or for an hour after the last Notify, in case the
	// node is gone for good). A retried Notify may store its notices twice, under new
	// sequence numbers: a notice is a hint, and acting on one twice is harmless.
	Notify(ctx context.Context, node string, ns ...Notice) error
	// TakeNotices returns up to max (at most 1000) of node's notices, oldest first,
	// without removing them: they stay until DoneNotices confirms them, so a take whose
	// answer is lost loses nothing, and the next take returns them again. So a notice may
	// be returned more than once, which is harmless (acting on a notice twice is). One
	// process takes a node's notices: the node itself.
	TakeNotices(ctx context.Context, node string, max int) ([]Notice, error)
	// DoneNotices removes every notice of node whose Seq is upTo or less: the node acted
	// on them. Idempotent: a retry removes nothing more, since every notice left has a
	// greater Seq.
	DoneNotices(ctx context.Context, node string, upTo uint64) error

	// SetRetained stores r as the retained message of r.Topic, replacing the one before, or
	// clears the topic's retained message when r.Data is empty. It returns the version the
	// store gave the change (r.Version is ignored). A message whose TTL passes is gone.
	//
	// Versions come from one counter for all topics: each change, a clear included, gets
	// one greater than every version given before. r.TTL counts from the moment the store
	// writes the message (0: it never expires). It refuses what Retained.Validate refuses.
	// A retry after a lost answer stores the message again, under a newer version.
	SetRetained(ctx context.Context, r Retained) (uint64, error)
	// Retained returns every retained message not expired, each with its version and the
	// time it has left (on the store's clock), in no particular order.
	//
	// TTL is zero for a message that never expires, else positive. A message set or cleared
	// while Retained reads may be returned in its old or its new state. Expired messages
	// it meets may be deleted.
	Retained(ctx context.Context) ([]Retained, error)

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
		case len(m.CollapseKey) > MaxCollapseKey:
			return fmt.Errorf("append %q to %q: collapse key of %d bytes is over the maximum of %d", m.ID, m.To, len(m.CollapseKey), MaxCollapseKey)
		case m.CollapseLimit < 0:
			return fmt.Errorf("append %q to %q: negative collapse limit %d", m.ID, m.To, m.CollapseLimit)
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
