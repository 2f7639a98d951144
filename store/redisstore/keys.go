package redisstore

import "encoding/base64"

// keys names a store's Redis keys. The ids are base64url-encoded inside the hash tag: the
// alphabet has no '{' or '}', so no id can close the tag early, and the encoding is
// injective, so two ids never share keys.
type keys struct{ prefix string }

func (k keys) client(client, suffix string) string {
	return k.prefix + ":{c:" + base64.RawURLEncoding.EncodeToString([]byte(client)) + "}:" + suffix
}

// presence is the client's presence hash.
func (k keys) presence(client string) string { return k.client(client, "p") }

// queue is the client's list of message ids, oldest first.
func (k keys) queue(client string) string { return k.client(client, "q") }

// messages is the client's hash of message id to encoded message.
func (k keys) messages(client string) string { return k.client(client, "m") }

// node is the set of clients that connected on node.
func (k keys) node(node string) string {
	return k.prefix + ":{n:" + base64.RawURLEncoding.EncodeToString([]byte(node)) + "}:clients"
}
