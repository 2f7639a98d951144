// Package redisstore implements store.Store on Redis 7.0 or later: standalone, behind
// Sentinel, or a Redis Cluster.
//
// # Key layout
//
// Every key of one client carries the same hash tag, so each operation touches one hash slot
// and a Lua script can change a client's keys atomically, on a Redis Cluster too: no script
// and no multi-key command spans two slots (a pipeline may; go-redis splits it per node). The client id is base64url-encoded inside the tag, so no byte of an id (a '}'
// included) can end the tag early or make two ids share keys; node names are encoded the
// same way in theirs:
//
//	<prefix>:{c:<b64 client>}:p    hash: node, epoch, session, since (and p* copies of the
//	                               presence the last Connect replaced, pn, how many
//	                               pending takeovers it returned, and pt, how many it
//	                               left in t; see Connect)
//	<prefix>:{c:<b64 client>}:t    list: the pending takeovers, oldest first, four
//	                               elements each: node, epoch, session, since
//	<prefix>:{c:<b64 client>}:o    sorted set: message id, scored by its sequence number
//	<prefix>:{c:<b64 client>}:oh   sorted set: the same for the high lane (see
//	                               store.Priorities): ids of high-priority messages only
//	<prefix>:{c:<b64 client>}:m    hash: message id -> encoded message (see codec.go; the
//	                               header holds the expiry and the sequence number)
//	<prefix>:{c:<b64 client>}:seq  string: the last sequence number given to the client
//	<prefix>:{c:<b64 client>}:k    hash: collapse key -> the id of the message that last
//	                               came with it (see appendLua)
//	<prefix>:{n:<b64 node>}:clients  set: ids of clients that connected on the node
//	<prefix>:{n:<b64 node>}:notices  list: the node's notices, oldest first, each
//	                                 "<seq>,<encoded notice>"
//	<prefix>:{n:<b64 node>}:nseq     string: the last sequence number given to a notice
//	                                 of the node
//	<prefix>:epochs                  sorted set: the (node, epoch) pairs presence was
//	                                 recorded under and ClearNode has not cleared (see
//	                                 epochs.go); no hash tag: one key
//	<prefix>:{r}:retained            hash: topic -> the cluster's retained message of the
//	                                 topic, "1,<expiry ms, 0 for none>,<version>,<data>"
//	<prefix>:{r}:rseq                string: the last version given to a retained change
//	<prefix>:{g:<b64 group>}:members sorted set: the group's client ids, every score 0, so
//	                                 ZRANGE BYLEX pages through them (see groups.go)
//	<prefix>:{j:<b64 job>}:job       hash: a fan-out job (see jobs.go); expires
//	                                 store.JobRetention after it ends
//	<prefix>:jobs                    sorted set: ids of jobs that may still run, scored by
//	                                 creation; no hash tag: one key, a hint the job
//	                                 hashes overrule
//	<prefix>:{e}:log, :{e}:pend, :{e}:state, :{e}:cons:<b64 name>
//	                                 the delivery receipts: the log (a stream), the
//	                                 registered messages, the ended ones and the log's
//	                                 consumers; see receipts.go
//	<prefix>:{s}:due, :{s}:msg       the scheduled messages (a send's deliver_at): by
//	                                 due time, and their contents; see schedule.go
//
// The retained messages are one hash and one counter for the whole cluster, sharing the
// hash tag {r}: one slot, so on Redis Cluster the cluster's retained set lives on one
// shard. That is fine for the thousands of retained topics an MQTT deployment has (each
// at most store.MaxRetainedData). A version is one more than rseq and at least Redis's
// clock in microseconds, a clear's included, so versions grow across all topics. Neither
// key expires; an expired message is deleted by the next Retained that reads it.
//
// The mailbox is the o, oh and m keys: o gives the order and the cursor of the normal
// lane (Peek reads the ids scored above the caller's last seen), oh the same for the high
// lane (PeekHigh), m the contents of both. An id is in one of the two sets, never both;
// the depth is the sum of their sizes. Both lanes take their numbers from the one
// counter, so an id and a sequence number name one message whichever lane holds it. A
// sequence number is one more than the last one the seq key records and at least Redis's
// clock in microseconds, so it grows in append order and is never reused, even once all
// of a client's keys expired.
// (The list layout of version 1 named its order key q; it is no longer read.)
//
// The pending takeovers have their own key beside the presence, in the same hash slot, so
// that Disconnect and ClearNode, which delete the presence key, leave them: a client whose
// only key is t is offline (Lookup and Append read p alone), and its next Connect
// carries them over. Only ConfirmTakeover by the session that owns p clears t, and only
// the pt takeovers that session's Connect left there (a presence Reassert recorded again
// knows of none). A Connect drops the oldest takeovers past store.MaxPending, so t holds at most
// MaxPending+1 (the carried ones and the presence that Connect replaced). t has no
// expiry, like p: it is a few hundred bytes, left only by a client whose takeover failed
// and that never connected again.
//
// A notice's sequence number is one more than the last one nseq records and at least
// Redis's clock in microseconds, like a message's, so it grows in Notify order even after
// both keys expired. Notices stay in the list after TakeNotices (an LRANGE) returns them,
// until DoneNotices trims those numbered up to the one it is given. (Version 1 popped
// notices and kept a copy under taken:<token> for the retries of one call; a take whose
// reply came too late lost them. Those keys are no longer written or read.)
//
// The node index lives in another hash slot than the presence it points to, so no script
// can update both: it is kept as a superset of the clients whose presence names the node
// (added before and after the scripts of Connect and Reassert, removed only after checking
// the presence), and
// the reaper, ClearNode, checks each entry against the presence with a compare-and-delete
// script.
//
// # Scripts
//
// connect, confirm, reassert, disconnect and clear change one client's presence and
// pending takeovers; append adds a client's messages and reads its presence; peek reads
// one lane of a mailbox after a cursor and deletes the expired messages it meets; remove
// deletes ids anywhere in a mailbox, in either lane; notify numbers and appends a node's
// notices, done trims those a node confirmed; set-retained versions and stores or clears a
// retained message, and scan-retained reads one HSCAN page of them and deletes the expired
// ones it meets.
// scripts.go documents each one's keys, arguments and reply.
//
// Append, Remove and ClearNode send all of a call's script runs in one pipeline of
// EVALSHA (one run per client, or a few for many messages); the other calls send theirs
// alone (Retained one run per page of about a hundred topics). The scripts are loaded at
// New; a run that Redis answers NOSCRIPT, because it lost its script cache, runs again
// once the script is loaded, and one answered TRYAGAIN (on a cluster, its keys are split
// between two nodes while their slot migrates) runs again after a pause of a few
// milliseconds, up to ten times. go-redis follows MOVED and ASK.
//
// # Durability
//
// Config.Durability says what an acknowledged write has survived (see Durability): with
// DurabilityReplica, the default when every primary has a replica at New, each pipeline of
// durable writes (Append, Connect, Reassert, ConfirmTakeover, Notify, SetRetained) ends
// with WAIT 1 <timeout> on the connection that sent them, added by a go-redis hook
// (waitHook), so a batch of any size costs one replica round trip. On a cluster the hook
// sits on every node's client, so each node's share of a pipeline, and each share resent
// after a redirection, ends with its own wait. A wait that is not satisfied fails the call with
// store.ErrUnavailable: its writes are on the primary, and a retry finds them (duplicates).
//
// # Outages
//
// A second hook (guard) stops sending calls to a Redis that three calls in a row found out
// of reach: they fail at once with store.ErrUnavailable, and one call every 100ms goes
// through to find out whether Redis is back; the first reply ends the outage. On Redis
// Cluster each node has its own guard, so a dead primary fails only its own slots' calls.
//
// # Atomicity and retries
//
// Each script is atomic. A script has no rollback, so every script makes all its checks
// before its first write. go-redis retries a command after a timeout or a dropped
// connection, so a script may run twice; every script is written so that a second run
// changes nothing more: Append finds the message id already in the mailbox and reports
// Duplicate with the first run's sequence number, Remove and Peek delete only what is
// there, TakeNotices removes nothing and DoneNotices removes only notices up to a number
// (a second run finds none), ConfirmTakeover clears the takeovers its session's Connect
// left and records that it did (a second run clears none), Reassert sets what the first
// run set, and Connect remembers the presence it replaced and how many pending
// takeovers it returned, and reports those again when the same session connects twice.
// Only the counts degrade: a retried Disconnect may report false and a retried ClearNode
// may count fewer clients than it cleared. A retried Notify may append its notices twice,
// under new numbers, which a node may act on twice without harm, and a retried
// SetRetained stores its message again under a newer version.
//
// A timeout is reported as store.ErrUnavailable although the script may have run before
// the reply was lost; the caller's retry of the same call is safe for the same reasons.
//
// # One clock
//
// Every expiry is judged on Redis's clock: the scripts read it with TIME (Redis 7
// replicates a script's effects, so replicas and the append-only file replay what the
// script wrote, not its clock). Append takes a TTL and the script stores the message's
// expiry as TIME plus the TTL, in milliseconds (rounded down); Peek returns the time left,
// TIME of the read subtracted, and never a message whose expiry passed. The o, oh, m and
// seq keys carry a PEXPIREAT at the latest expiry of any message appended to them plus a
// grace minute, computed in the script too and never shortened, so an abandoned mailbox
// vanishes by itself after its last message expired, and no caller's clock decides when.
// A node's notices list and counter expire an hour after their last Notify. A retained
// message's expiry is TIME plus its TTL too, and Retained returns what is left of it on
// the TIME of the page's read.
//
// # What a mailbox promises
//
// An acknowledged Append is in Redis memory and in the append-only file's buffer. With
// appendfsync everysec a machine crash can lose about the last second of appends; a
// process crash cannot. Replication to replicas is asynchronous: with DurabilityNone a
// Sentinel or Cluster failover can lose appends the old primary acknowledged; with
// DurabilityReplica an acknowledged append is on a replica too, and the loss of the
// primary loses none. A primary that runs with min-replicas-to-write refuses writes when
// cut off from its replicas (NOREPLICAS), which this package reports as
// store.ErrUnavailable. Sequence numbers stay increasing across a
// failover as long as the new primary's clock is not behind the old one's by more than
// the failover took. Redis must run with maxmemory-policy noeviction: any other policy
// silently deletes whole mailboxes (New refuses a Redis with a maxmemory and such a
// policy), while noeviction refuses the write, which this package reports as store.ErrStoreFull (for Append, in the Err of each message of the
// refused script run, a duplicate in the same run included).
package redisstore
