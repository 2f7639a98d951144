// Package wire is Switchboard's internal protocol, version 2: the router asks broker nodes
// to deliver messages, and a node asks another node to kick a stale session or to drain
// mailboxes.
//
// There is one persistent TCP connection per (client, server) pair. The client opens it with
// a hello (magic "SBW1", protocol version, token); the server answers hello-ok, or a reject
// frame naming the problem and closes. A server speaks one version: a version-1 hello is
// rejected with a reason naming both versions. After that the connection is pipelined: the
// client sends requests (deliver, kick, drain, ping), each carrying a sequence number of its
// choosing, and the server answers with results (a pong for a ping) carrying the same
// number, in whatever order they settle.
//
// A deliver carries one to MaxMsgs messages for one session of one client, and takes
// len(Msgs) consecutive sequence numbers: message i is answered by its own result, with
// sequence number Seq+i, once it is settled (delivered, queued in the client's mailbox,
// expired or refused). Kick, drain and ping are answered by one result or pong each.
//
// Every frame is a 4-byte big-endian body length followed by the body: one type byte, then
// the fields in a fixed order. Unsigned integers are uvarints, int64s zigzag varints,
// strings and byte slices a uvarint length then the bytes, lists a uvarint count then the
// items; single-byte fields (QoS, status) are raw bytes. Varints must be minimal, a uint32
// field must fit 32 bits and a body must be used up exactly, so every frame has exactly one
// encoding: whatever DecodeFrame accepts, AppendFrame re-encodes to the same bytes. A list
// count larger than the rest of the body could hold (or, for a deliver's messages, than
// MaxMsgs) is refused before anything is allocated for it. The bodies are:
//
//	hello     magic[4] version:uvarint token:string
//	hello-ok  version:uvarint
//	reject    reason:string
//	deliver   seq:uvarint epoch:varint client:string session:string max-wait-ms:uvarint
//	          count:uvarint { id:string topic:string payload:bytes qos:byte ttl-ms:varint }
//	kick      seq:uvarint epoch:varint client:string session:string
//	drain     seq:uvarint epoch:varint count:uvarint { client:string }
//	result    seq:uvarint status:byte detail:string
//	ping      seq:uvarint
//	pong      seq:uvarint
//	forward   seq:uvarint from:string epoch:varint count:uvarint { kind:byte body:bytes }
//
// A deliver message's qos byte holds the MQTT QoS in its low seven bits and, in bit 0x80,
// whether the message asks for a delivery receipt (Msg.Receipt). Receipts came without a
// new version: a server that predates them refuses such a message as a QoS over 1.
//
// A request that decodes but is invalid (a deliver without a session, say) is answered
// with StatusBadRequest, a deliver once per message. So is a request that fails to decode
// but whose sequence number (for a deliver, and message count) can still be read; any other
// bad frame closes the connection, since the server could not answer every call waiting on
// it.
//
// On the server, the Handler is called on the connection's reader goroutine in arrival
// order and must not block; a deliver's messages are answered through a reply function
// that may be called from any goroutine. Back-pressure is per connection: while MaxPending
// messages await their answer the reader stops reading, and TCP pushes back on the client.
//
// Both ends watch for a link that goes silent without breaking (a peer stopped, a cable
// cut): the client pings every PingInterval (with sequence number 0, which no call uses),
// and each end declares the connection lost when nothing arrived for its IdleTimeout. Every call pending on a lost connection fails with
// ErrConnLost: its outcome is unknown.
//
// Server runs a Handler for requests on a node; Conn is the client end, and Pool keeps one
// live Conn per address.
package wire
