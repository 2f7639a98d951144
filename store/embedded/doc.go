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
//	presence  client id -> the presence, the presence it replaced and the client's pending
//	          takeovers (see Connect); a record with no presence holds only pending
//	          takeovers, which Disconnect and ClearNode leave
//	nodes     name(node) epoch name(client) -> nothing: the node index ClearNode walks
//	boxes     name(client) -> mailbox header: depth (deleted when the mailbox empties)
//	messages  name(client) seq -> the message and its expiry (seq is 8 bytes big-endian:
//	          oldest first, and Peek's cursor is a seek to seq+1)
//	ids       name(client) id -> seq: recognises a duplicate Append, finds a Remove's id
//	expiry    expiry-nanoseconds name(client) seq -> nothing: the sweeper's work list
//	meta      "seq" -> the last sequence number given to any message; "rseq" -> the last
//	          version given to a retained change
//	retained  SHA-256(topic) -> the topic's retained message: topic, data, version, expiry
//	          (a topic may be 64 KiB, over bbolt's key limit, so the key is its hash)
//	groups    group name -> a bucket: "n" -> its size, "m" id -> 1 for each member
//	          (created by the first ChangeGroup, so older files open unchanged)
//	jobs      job id -> the job as JSON, with its lease's end (created by the first job)
//	collapse  name(client) collapse key -> the id of the message that last came with it
//	          (see collapse.go; created by the first append with a collapse key)
//	high      name(client) seq -> 1 for each message in the high lane (store.Priorities;
//	          created by the first high-priority append): the messages bucket holds both
//	          lanes, so the depth, the id and expiry indexes and the sweeper cover both;
//	          PeekHigh walks this index, Peek skips the messages it names
//
// Sequence numbers are store-wide: each is one more than the last one given, and at
// least the process clock in Unix microseconds. So one client's numbers grow in append
// order and are never reused, even after its mailbox emptied and its header was deleted,
// or the process restarted. Retained versions are made the same way from "rseq", a
// clear included, so they grow across all topics.
//
// Unlike Redis, where the node index lives in another hash slot than the presence, every
// transaction here can change both, so the index is exact rather than a superset.
//
// A client's pending takeovers are kept in its presence record, beside the presence:
// Disconnect and ClearNode delete the presence but rewrite the record with the pending
// takeovers alone when there are any, and Lookup and Append see such a record as offline.
// ConfirmTakeover, by the session that owns the presence, removes the ones that
// session's Connect left (a presence Reassert recorded anew left none). Connect drops
// the oldest past store.MaxPending, so a record holds at most MaxPending+1.
//
// # Notices
//
// Node notices are kept in memory, in a mutex-guarded queue per node inside the Store,
// not in the file. `switchboard up` runs every node in the same process as its store, so
// notices and the nodes they are for live and die together: a restart loses both, and
// the restarted nodes read their clients' mailboxes as the clients connect again. So
// Notify, TakeNotices and DoneNotices need no commit. A notice's sequence number is
// store-wide, one more than the last one given and at least the process clock in Unix
// microseconds. TakeNotices leaves the notices it returns in the queue; DoneNotices
// removes them. A node's queue is dropped an hour after its last notice if the node never
// confirms it.
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
// Expiry is judged on one clock, the process's: Append turns each message's TTL into an
// expiry at the moment its transaction runs, and Peek returns the time left at its read.
// Peek (and PeekHigh) never returns an expired message: it deletes those at the head of
// the lane it reads, as the Redis store does, and skips those behind an unexpired one.
// Redis also expires a whole mailbox a minute after its last message's expiry; here a
// sweeper goroutine instead deletes, every Config.SweepInterval, each message whose
// expiry passed, wherever it is in its mailbox and whichever lane, so an abandoned
// mailbox does not keep expired messages. It walks the
// expiry index, so a sweep costs in proportion to what it deletes, and a sweep that finds
// nothing costs no commit. A retained message's TTL becomes an expiry on the same clock;
// Retained never returns an expired one and deletes those it met (the sweeper leaves the
// retained bucket alone: Retained reads it whole anyway, and it holds thousands of
// topics, not millions).
//
// # Errors
//
// A write refused for lack of disk (ENOSPC, EDQUOT) wraps store.ErrStoreFull; nothing of
// that transaction was written. bbolt never overwrites a page in place, so even a delete
// needs free disk: the store keeps Config.ReserveBytes in a file beside its database and
// deletes that file when a commit fails for lack of disk. Removals, disconnects and the
// sweeper then go on freeing space, while Append recognises duplicates and full
// mailboxes but gives every new message an Err that wraps store.ErrStoreFull until the
// reserve can be written again (tried at most once a second), as Redis with noeviction
// refuses writes but serves deletes. A call on a closed store wraps ErrClosed and
// store.ErrUnavailable. If a call's context ends while its write waits for the
// committer, nothing is written; if it ends while the write is being committed, the call
// returns and the write may still commit, so the caller's retry must be idempotent, as it
// is for every operation here (Append recognises its message ids and reports their
// sequence numbers, Remove deletes only what is there, Connect remembers the presence it
// replaced and the pending takeovers it returned, Reassert and ConfirmTakeover set what
// they set before).
//
// The file grows to the most data it ever held and reuses its free pages; it does not
// shrink.
package embedded
