// Package embedded implements store.Store in one file on local disk, for `switchboard up`,
// which runs the whole cluster in one process with no external servers. The data survives
// a restart of the process with the same directory.
//
// It is built on bbolt (go.etcd.io/bbolt), a B+tree in one memory-mapped file with
// serializable transactions: one writer at a time, readers that never block. The choice
// against pebble was measured; docs/BENCHMARKS.md has the figures and the reasons, and
// choice_bench_test.go reproduces them.
//
// # Layout
//
// One file, Config.Dir/switchboard.db (and the disk reserve beside it, see Errors), with
// these buckets. A client id or node name inside a key is written as name: its length as
// a uvarint, then its bytes. The encoding is prefix-free, so one client's keys form one
// contiguous range whatever bytes ids hold. bbolt keys hold at most 32 KiB, so a client
// id (with a message id) longer than that is refused with an error.
//
//	presence  client id -> the presence, and the presence it replaced (see Connect)
//	nodes     name(node) epoch name(client) -> nothing: the node index ClearNode walks
//	boxes     name(client) -> mailbox header: next sequence number, depth
//	messages  name(client) seq -> the message (seq is 8 bytes big-endian: oldest first)
//	ids       name(client) id -> seq: recognises a duplicate Append
//	expiry    expiry-nanoseconds name(client) seq -> nothing: the sweeper's work list
//
// Unlike Redis, where the node index lives in another hash slot than the presence, every
// transaction here can change both, so the index is exact rather than a superset.
//
// # Atomicity, durability and group commit
//
// Each operation is one bbolt transaction. A write returns once its transaction is
// committed and fsynced: a process crash or a machine crash loses no acknowledged write.
// Because an fsync costs about a millisecond, writes that wait at the same time share one
// transaction and one fsync (group commit): one goroutine, the committer, runs every
// write that arrived while the previous commit was syncing. If one write of a group
// fails, the transaction is rolled back and the others are committed without it.
//
// Reads (Lookup, Depth, and Peek when no expired message is at the head) run in read
// transactions beside the committer and see every write whose call returned.
//
// # Expiry
//
// Peek deletes the expired messages at a mailbox's head, as the Redis store does. Redis
// also expires a whole mailbox a minute after its last message's expiry; here a sweeper
// goroutine instead deletes, every Config.SweepInterval, each message whose expiry passed,
// wherever it is in its mailbox, so an abandoned mailbox does not keep expired messages.
// It walks the expiry index, so a sweep costs in proportion to what it deletes, and a
// sweep that finds nothing costs no commit.
//
// # Errors
//
// A write refused for lack of disk (ENOSPC, EDQUOT) wraps store.ErrStoreFull; nothing of
// that transaction was written. bbolt never overwrites a page in place, so even a delete
// needs free disk: the store keeps Config.ReserveBytes in a file beside its database and
// deletes that file when a commit fails for lack of disk. Acknowledgements, disconnects
// and the sweeper then go on freeing space, while Append recognises duplicates and full
// mailboxes but refuses new messages with store.ErrStoreFull until the reserve can be
// written again (tried at most once a second), as Redis with noeviction refuses writes
// but serves deletes. A call on a closed store wraps ErrClosed and store.ErrUnavailable. If a call's context ends while its write waits for the committer,
// nothing is written; if it ends while the write is being committed, the call returns and
// the write may still commit, so the caller's retry must be idempotent, as it is for every
// operation here (Append recognises its message id, Ack pops only ids at the head,
// Connect remembers the presence it replaced).
//
// The file grows to the most data it ever held and reuses its free pages; it does not
// shrink.
package embedded
