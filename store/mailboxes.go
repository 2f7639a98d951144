package store

// MailboxDepth is one client's mailbox depth, as Store.Mailboxes returns it.
//
// A walk with Mailboxes starts with the cursor "" and passes each call's next cursor to the
// following call, until next is "". Each call examines about n entries (at most
// MaxMailboxesPage) of the backend's index: on Redis a SCAN of that many keys, which may
// find fewer mailboxes than n, even none before the walk ends; on the embedded store n
// mailboxes. So the caller bounds a walk's cost by the calls it makes. A mailbox that
// exists throughout a walk is returned at least once (Redis may return one twice); one
// created or emptied during it may be missed. Depth counts the messages held, expired ones
// not yet deleted included. The order is the backend's (Redis: its hash table's, which is
// as good as random; embedded: by client id), so the first pages of a walk are a sample
// only on Redis.
type MailboxDepth struct {
	Client string `json:"client"`
	Depth  int    `json:"depth"`
}

// MaxMailboxesPage is the most entries one Mailboxes call examines.
const MaxMailboxesPage = 1000
