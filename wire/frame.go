package wire

import (
	"encoding/binary"
	"fmt"
)

const (
	// Magic opens every hello; a server refuses a connection that does not start with it.
	// It names the protocol family and did not change with version 2, so a version-1 peer
	// gets a reject naming both versions rather than a bad-magic one.
	Magic = "SBW1"
	// ProtocolVersion is the version this package speaks, and the only one it accepts.
	ProtocolVersion = 2
	// DefaultMaxFrame is the default limit on a frame body's length.
	DefaultMaxFrame = 16 << 20 // 16 MiB
	// maxMaxFrame keeps a body length inside the 4-byte header with room to spare.
	maxMaxFrame = 1 << 30
)

// Frame types: the first byte of a body.
const (
	typeHello   byte = 1
	typeHelloOK byte = 2
	typeReject  byte = 3
	typeDeliver byte = 4
	typeKick    byte = 5
	typeDrain   byte = 6
	typeResult  byte = 7
	typePing    byte = 8
	typePong    byte = 9
	typeForward byte = 10
)

var typeNames = [...]string{
	typeHello: "hello", typeHelloOK: "hello-ok", typeReject: "reject", typeDeliver: "deliver",
	typeKick: "kick", typeDrain: "drain", typeResult: "result", typePing: "ping", typePong: "pong", typeForward: "forward",
}

func typeName(t byte) string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type %d", t)
}

// Frame is one protocol message: Hello, HelloOK, Reject, Deliver, Kick, Drain, Result, Ping,
// Pong or Forward. The set is closed.
type Frame interface {
	frameType() byte
	appendBody(dst []byte) []byte
}

// Hello is the client's first frame. Its encoding starts with Magic.
type Hello struct {
	Version uint64 // ProtocolVersion
	Token   string // shared secret; "" when the server requires none
}

// HelloOK is the server's answer to an accepted Hello.
type HelloOK struct {
	Version uint64 // ProtocolVersion
}

// Reject is the server's answer to a refused Hello; the server closes the connection after
// sending it.
type Reject struct {
	Reason string
}

// Ping asks the server for a Pong with the same Seq. A Conn's heartbeat pings carry Seq 0,
// which no call uses.
type Ping struct {
	Seq uint64
}

// Pong answers a Ping.
type Pong struct {
	Seq uint64
}

func (Hello) frameType() byte   { return typeHello }
func (HelloOK) frameType() byte { return typeHelloOK }
func (Reject) frameType() byte  { return typeReject }
func (Deliver) frameType() byte { return typeDeliver }
func (Kick) frameType() byte    { return typeKick }
func (Drain) frameType() byte   { return typeDrain }
func (Result) frameType() byte  { return typeResult }
func (Ping) frameType() byte    { return typePing }
func (Pong) frameType() byte    { return typePong }

// AppendFrame appends f's whole frame (the 4-byte big-endian body length, then the body) to
// dst and returns the extended slice. It does not check a maximum frame size.
func AppendFrame(dst []byte, f Frame) []byte {
	dst, start := beginFrame(dst, f.frameType())
	return endFrame(f.appendBody(dst), start)
}

// beginFrame appends a header with a placeholder length and the type byte; endFrame fills in
// the length once the body is appended. Hot paths call them around a concrete appendBody so
// the frame is never boxed in an interface.
func beginFrame(dst []byte, typ byte) ([]byte, int) {
	start := len(dst)
	return append(dst, 0, 0, 0, 0, typ), start
}

func endFrame(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// DecodeFrame decodes one frame body (without the length header). Every error wraps
// ErrMalformed. It never panics, and what it accepts AppendFrame re-encodes to the same
// bytes. Decoded strings and byte slices do not alias body.
func DecodeFrame(body []byte) (Frame, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	b := body[1:]
	var (
		f   Frame
		err error
	)
	switch body[0] {
	case typeHello:
		f, err = decodeHello(b)
	case typeHelloOK:
		f, err = decodeHelloOK(b)
	case typeReject:
		f, err = decodeReject(b)
	case typeDeliver:
		f, err = decodeDeliver(b)
	case typeKick:
		f, err = decodeKick(b)
	case typeDrain:
		f, err = decodeDrain(b)
	case typeResult:
		f, err = decodeResult(b)
	case typePing:
		f, err = decodePing(b)
	case typePong:
		f, err = decodePong(b)
	case typeForward:
		f, err = decodeForward(b)
	default:
		return nil, fmt.Errorf("%w: unknown frame type %d", ErrMalformed, body[0])
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}
