package redisstore

import "encoding/base64"

// keys names a store's Redis keys (doc.go describes the layout). The ids are
// base64url-encoded inside the hash tag: the alphabet has no '{' or '}', so no id can close
// the tag early, and the encoding is injective, so two ids never share keys.
type keys struct{ prefix string }

func (k keys) client(client, suffix string) string {
	return k.prefix + ":{c:" + base64.RawURLEncoding.EncodeToString([]byte(client)) + "}:" + suffix
}

func (k keys) ofNode(node, suffix string) string {
	return k.prefix + ":{n:" + base64.RawURLEncoding.EncodeToString([]byte(node)) + "}:" + suffix
}

// presence is the client's presence hash.
func (k keys) presence(client string) string { return k.client(client, "p") }

// takeovers is the client's list of pending takeovers: four elements (node, epoch,
// session, since) for each presence that a Connect replaced and no ConfirmTakeover
// confirmed, oldest first.
func (k keys) takeovers(client string) string { return k.client(client, "t") }

// order is the client's sorted set of message ids, scored by sequence number.
func (k keys) order(client string) string { return k.client(client, "o") }

// high is the client's sorted set of the ids of its high-priority messages, scored by
// sequence number: the high lane (see store.Priorities), which order does not hold.
func (k keys) high(client string) string { return k.client(client, "oh") }

// messages is the client's hash of message id to encoded message.
func (k keys) messages(client string) string { return k.client(client, "m") }

// seq is the client's counter: the last sequence number given to one of its messages.
func (k keys) seq(client string) string { return k.client(client, "seq") }

// chain is the mark the last run of a multi-run Append left for the client (see
// appendLua); it lives a minute.
func (k keys) chain(client string) string { return k.client(client, "ch") }

// collapse is the client's hash of collapse key -> the id of the message that last came
// with it (see appendLua).
func (k keys) collapse(client string) string { return k.client(client, "k") }

// appendKeys are the keys of the client the append script takes, in its order.
func (k keys) appendKeys(client string) []string {
	return []string{k.order(client), k.messages(client), k.seq(client), k.presence(client), k.chain(client),
		k.collapse(client), k.high(client)}
}

// node is the set of clients that connected on node.
func (k keys) node(node string) string { return k.ofNode(node, "clients") }

// notices is node's list of notices, oldest first, each "<seq>,<encoded notice>".
func (k keys) notices(node string) string { return k.ofNode(node, "notices") }

// noticeSeq is node's counter: the last sequence number given to one of its notices.
func (k keys) noticeSeq(node string) string { return k.ofNode(node, "nseq") }

// noticeKeys are node's notice keys in the order the notify script takes them.
func (k keys) noticeKeys(node string) []string {
	return []string{k.notices(node), k.noticeSeq(node)}
}

// epochs is the sorted set of (node, epoch) pairs under which presence was recorded and
// not yet cleared (see epochs.go). It has no hash tag: it is one key.
func (k keys) epochs() string { return k.prefix + ":epochs" }

// retained is the cluster's hash of retained messages: topic -> encoded message (see
// codec.go). It and retainedSeq share the hash tag {r}, so one script changes both, and
// on Redis Cluster the whole retained set lives on the one shard that serves that slot.
func (k keys) retained() string { return k.prefix + ":{r}:retained" }

// retainedSeq is the counter of the retained messages: the last version given to a change.
func (k keys) retainedSeq() string { return k.prefix + ":{r}:rseq" }

// retainedKeys are the retained keys in the order the set-retained script takes them.
func (k keys) retainedKeys() []string { return []string{k.retained(), k.retainedSeq()} }

// group is the sorted set of a group's members, every score 0, so that ZRANGE BYLEX pages
// through them in byte order. Each group has its own hash tag.
func (k keys) group(name string) string {
	return k.prefix + ":{g:" + base64.RawURLEncoding.EncodeToString([]byte(name)) + "}:members"
}

// job is a fan-out job's hash (see jobs.go). Each job has its own hash tag.
func (k keys) job(id string) string {
	return k.prefix + ":{j:" + base64.RawURLEncoding.EncodeToString([]byte(id)) + "}:job"
}

// runningJobs is the sorted set of the ids of jobs that may still be running, scored by
// creation time. It has no hash tag: it is one key, an index that the job hashes overrule.
func (k keys) runningJobs() string { return k.prefix + ":jobs" }
