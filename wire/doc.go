// Package wire is Switchboard's internal protocol: the router asks broker nodes to deliver
// messages, and a node asks another node to kick a stale session or to drain a mailbox.
//
// There is one persistent TCP connection per (client, server) pair. The client opens it with a
// hello (magic "SBW1", protocol version, token); the server answers hello-ok, or a reject frame
// naming the problem and closes. After that the connection is pipelined: the client sends
// requests (deliver, kick, drain, ping), each carrying a sequence number of its choosing, and
// the server answers each with a result (a pong for a ping) carrying the same number, in
// whatever order its handlers finish.
//
// Every frame is a 4-byte big-endian body length followed by the body: one type byte, then the
// fields in a fixed order. Unsigned integers are uvarints, int64s zigzag varints, strings and
// byte slices a uvarint length then the bytes; single-byte fields (QoS, status) are raw bytes.
// Varints must be minimal and a body must be used up exactly, so every frame has exactly one
// encoding: whatever DecodeFrame accepts, AppendFrame re-encodes to the same bytes.
//
// Server runs a Handler for requests on a node; Conn is the client end, and Pool keeps one
// live Conn per address.
package wire
