package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Receipts are the terminal events of directed messages: each message sent with
// Message.Receipt ends in exactly one receipt (delivered, expired, rejected, dropped,
// deleted, ...), recorded durably in one log that consumers (the router's webhook and
// event stream) read from a cursor. The router and the nodes use them when the store
// provides them (both store/redisstore and store/embedded do); every implementation
// passes the receipt tests of storetest.Run. Methods are safe for concurrent use.
//
// # One terminal receipt per message
//
// A message is named by its recipient and id (MessageKey). It may be registered (pending):
// Append registers every message with Message.Receipt set, before it writes the message,
// with the message's expiry on the store's clock. Finish records a receipt as the
// message's terminal one, once: a message that has a terminal receipt already keeps it,
// and a later Finish of it records nothing. Finish of a receipt with OnlyPending set
// records it only if the message is registered (the node's acknowledgements of mailbox
// messages, whose senders may not have asked for receipts), and a registration after the
// terminal receipt changes nothing (a node may store a copy of a message whose PUBACK it
// is recording at the same moment). SweepReceipts ends the registered messages whose
// expiry passed more than a grace ago with an expired receipt.
//
// So every registered message gets exactly one terminal receipt in the log, however many
// routers and nodes race to record one, as long as its terminal state is kept
// (ReceiptsOptions.Retention): a message sent again with the same id after that is a new
// message.
type Receipts interface {
	// Finish records each receipt as its message's terminal receipt, unless the message
	// has one already, or OnlyPending is set and the message is not registered. The
	// store sets Cursor and At. Receipts of one call enter the log in slice order, so
	// a caller that finishes one client's messages in the order they ended keeps that
	// order in the log. A retry after an error is safe: what the first call recorded is
	// not recorded twice.
	Finish(ctx context.Context, rs ...Receipt) error
	// SweepReceipts records an expired receipt for up to o.Max registered messages whose
	// expiry passed more than o.Grace ago, oldest expiry first, and forgets what
	// o.Retention allows: terminal states and log entries older than it, but no log
	// entry after o.Keep. It returns how many it expired. Concurrent sweeps are safe.
	SweepReceipts(ctx context.Context, o SweepOptions) (int, error)
	// ReadReceipts returns up to n (at most MaxReceiptsRead) receipts of the log after
	// the cursor after ("" reads from the oldest kept), oldest first. When there are none
	// it waits up to wait for one (0: it does not wait). A cursor the log no longer holds
	// (trimmed by SweepReceipts) reads from the oldest kept.
	ReadReceipts(ctx context.Context, after string, n int, wait time.Duration) ([]Receipt, error)
	// ReceiptsTail returns the cursor of the newest receipt in the log ("" if it is
	// empty): reading after it returns only receipts recorded later.
	ReceiptsTail(ctx context.Context) (string, error)
	// MessageState returns where the message (client, id) stands: registered and
	// pending, or its terminal receipt. An error wrapping ErrNoMessage when the store
	// knows neither (never registered, or forgotten after the retention).
	MessageState(ctx context.Context, client, id string) (MessageState, error)
	// Consumer returns the named consumer's state (the zero Consumer if it has none).
	Consumer(ctx context.Context, name string) (Consumer, error)
	// SetConsumer stores the named consumer's state if holder holds the consumer's
	// lease (see ClaimConsumer); ErrNotOwner otherwise.
	SetConsumer(ctx context.Context, name, holder string, c Consumer) error
	// ClaimConsumer gives holder the named consumer's lease for ttl (on the store's
	// clock) if it is free, expired or holder's already, and reports whether it did. One
	// router at a time reads the log for a consumer such as the webhook.
	ClaimConsumer(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
}

// ErrNoMessage means the store knows nothing of a message (see Receipts.MessageState).
var ErrNoMessage = errors.New("no such message")

// ErrBadCursor means a cursor is not one this store gives (another store's, or garbage).
var ErrBadCursor = errors.New("not a cursor of this store")

// ReceiptStatus is how a message ended.
type ReceiptStatus string

const (
	// ReceiptDelivered: the client acknowledged it (QoS 1), or it was written to the
	// client (QoS 0).
	ReceiptDelivered ReceiptStatus = "delivered"
	// ReceiptExpired: its TTL ran out before it was delivered.
	ReceiptExpired ReceiptStatus = "expired"
	// ReceiptRejected: it was refused after it was accepted (a recipient of a fan-out
	// whose mailbox was full, say).
	ReceiptRejected ReceiptStatus = "rejected"
	// ReceiptDropped: a QoS 0 message that could not be written to its client.
	ReceiptDropped ReceiptStatus = "dropped"
	// ReceiptDeleted: deleted from its mailbox through the API before it was delivered.
	ReceiptDeleted ReceiptStatus = "deleted"
	// ReceiptCollapsed: replaced in its mailbox by a newer message with the same collapse
	// key.
	ReceiptCollapsed ReceiptStatus = "collapsed"
)

// Valid reports whether s is one of the statuses above.
func (s ReceiptStatus) Valid() bool {
	switch s {
	case ReceiptDelivered, ReceiptExpired, ReceiptRejected, ReceiptDropped, ReceiptDeleted, ReceiptCollapsed:
		return true
	}
	return false
}

// Receipt is the terminal event of one message.
type Receipt struct {
	// Cursor is the receipt's position in the log, set by the store: receipts read after
	// it are newer. Opaque.
	Cursor string
	Client string
	ID     string
	Status ReceiptStatus
	// Node is the node that delivered the message (or gave up on it), if one did.
	Node string
	// Attempts is how many times the node that recorded it wrote the message to the
	// client (0 when no node did).
	Attempts int
	// Detail says more, for people (why it was rejected, say).
	Detail string
	// At is when the store recorded it, on the store's clock; set by the store.
	At time.Time
	// OnlyPending (input only) records the receipt only if the message is registered.
	OnlyPending bool
}

// Validate refuses a receipt no store records.
func (r Receipt) Validate() error {
	switch {
	case r.Client == "":
		return fmt.Errorf("receipt %q: empty client id", r.ID)
	case r.ID == "":
		return fmt.Errorf("receipt for %q: empty message id", r.Client)
	case strings.IndexByte(r.Client, 0) >= 0 || strings.IndexByte(r.ID, 0) >= 0:
		return fmt.Errorf("receipt %q for %q: a zero byte in the client or message id", r.ID, r.Client)
	case !r.Status.Valid():
		return fmt.Errorf("receipt %q for %q: unknown status %q", r.ID, r.Client, r.Status)
	case len(r.Detail) > MaxReceiptDetail:
		return fmt.Errorf("receipt %q for %q: detail of %d bytes is over the maximum of %d", r.ID, r.Client, len(r.Detail), MaxReceiptDetail)
	}
	return nil
}

// MessageState is where one message stands (Receipts.MessageState).
type MessageState struct {
	Client string
	ID     string
	// Pending is true while the message is registered and has no terminal receipt: it
	// waits in its mailbox, or is on its way to the client. TTL is then the time it has
	// left, on the store's clock.
	Pending bool
	TTL     time.Duration
	// Receipt is the terminal receipt when Pending is false.
	Receipt Receipt
}

// SweepOptions bound one SweepReceipts call.
type SweepOptions struct {
	// Grace is how long after its expiry a registered message is declared expired: a
	// node may have written it just before it expired, and its acknowledgement may come
	// a little later.
	Grace time.Duration
	// Max is the most messages one sweep expires (at most MaxReceiptsRead).
	Max int
	// Retention is how long terminal states (for MessageState and the one-receipt rule)
	// and log entries are kept; 0 keeps them.
	Retention time.Duration
	// Keep is a cursor the sweep must not trim the log past ("" : no such bound): the
	// position of a consumer that has not read further.
	Keep string
	// KeepLog keeps the whole log (a consumer that has read nothing yet): only terminal
	// states are forgotten.
	KeepLog bool
}

// Consumer is the state of one reader of the log, kept in the store so that another
// router takes over where it stopped.
type Consumer struct {
	// Cursor is the last receipt the consumer handled ("" : none yet).
	Cursor string
	// Dead counts receipts the consumer gave up on (a webhook that kept failing).
	Dead int64
}

const (
	// MaxReceiptsRead is the most receipts one ReadReceipts returns, and the most one
	// SweepReceipts expires.
	MaxReceiptsRead = 1000
	// MaxReceiptDetail is the longest Receipt.Detail, in bytes.
	MaxReceiptDetail = 1024
)

// MessageKey is how the receipt machinery names a message: its recipient and its id.
// Neither can hold a zero byte (client ids are UTF-8 without control characters, message
// ids a few ASCII characters).
func MessageKey(client, id string) string { return client + "\x00" + id }
