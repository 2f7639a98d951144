// Package redisstore implements store.Store on Redis 7.0 or later, standalone or behind
// Sentinel.
//
// # Key layout
//
// Every key of one client carries the same hash tag, so each operation touches one hash slot
// and a Lua script can change a client's keys atomically (and the layout is ready for Redis
// Cluster). The client id is base64url-encoded inside the tag, so no byte of an id (a '}'
// included) can end the tag early or make two ids share keys:
//
//	<prefix>:{c:<b64 client>}:p   hash: node, epoch, session, since (and p* copies of the
//	                              presence the last Connect replaced; see Connect)
//	<prefix>:{c:<b64 client>}:q   list of message ids, oldest at the head
//	<prefix>:{c:<b64 client>}:m   hash: message id -> encoded message
//	<prefix>:{n:<b64 node>}:clients  set: ids of clients that connected on the node
//
// The node index lives in another hash slot than the presence it points to, so no script
// can update both: it is kept as a superset of the clients whose presence names the node
// (added before and after Connect's script, removed only after checking the presence), and
// the reaper, ClearNode, checks each entry against the presence with a compare-and-delete
// script.
//
// # Atomicity and retries
//
// Each method that writes runs one Lua script. A script has no rollback, so every script
// makes all its checks before its first write. go-redis retries a command after a timeout or
// a dropped connection, so a script may run twice; every script is written so that a second
// run changes nothing more: Append finds the message id already in the mailbox and reports
// Duplicate, Ack only pops ids still at the head, Connect remembers the presence it replaced
// and reports that one again when the same session connects twice. Only the counts degrade:
// a retried Disconnect may report false and a retried ClearNode may count fewer clients than
// it cleared.
//
// A timeout is reported as store.ErrUnavailable although the script may have run before
// the reply was lost; the caller's retry of the same call is safe for the same reasons.
//
// # Expiry
//
// Every message has an expiry. The q and m keys carry a PEXPIREAT at the latest expiry of
// any message appended to them plus a grace minute (never shortened), so an abandoned
// mailbox vanishes by itself after its last message expired.
//
// # What a mailbox promises
//
// An acknowledged Append is in Redis memory and in the append-only file's buffer. With
// appendfsync everysec a machine crash can lose about the last second of appends; a
// process crash cannot. Replication to replicas is asynchronous: a Sentinel failover can
// lose appends the old primary acknowledged, unless the primary runs with
// min-replicas-to-write (it then refuses writes when cut off from its replicas, which this
// package reports as store.ErrUnavailable). Redis must run with maxmemory-policy
// noeviction: any other policy silently deletes whole mailboxes, while noeviction refuses
// the write, which this package reports as store.ErrStoreFull.
package redisstore
