package wire

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"time"
)

// helloMaxFrame bounds the hello so an unauthenticated peer cannot make the server allocate
// a full MaxFrame.
const helloMaxFrame = 64 << 10

// acceptHello reads and checks a client's hello and answers it: hello-ok, or a reject frame
// naming the problem (the caller then closes nc).
func (s *Server) acceptHello(nc net.Conn, br *bufio.Reader) error {
	if err := nc.SetDeadline(time.Now().Add(s.opts.HelloTimeout)); err != nil {
		return fmt.Errorf("set hello deadline: %w", err)
	}
	fr := frameReader{br: br, max: min(s.opts.MaxFrame, helloMaxFrame)}
	body, err := fr.next()
	if err != nil {
		if errors.Is(err, ErrMalformed) || errors.Is(err, ErrFrameTooLarge) {
			reject(nc, "bad hello: "+err.Error())
		}
		return fmt.Errorf("read hello: %w", err)
	}
	if reason := checkHello(body, s.opts.Token); reason != "" {
		reject(nc, reason)
		return fmt.Errorf("%w: %s", ErrRefused, reason)
	}
	if _, err := nc.Write(AppendFrame(nil, HelloOK{Version: ProtocolVersion})); err != nil {
		return fmt.Errorf("send hello-ok: %w", err)
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("clear hello deadline: %w", err)
	}
	return nil
}

// checkHello returns why the hello in body is refused, or "".
func checkHello(body []byte, token string) string {
	if body[0] != typeHello {
		return "expected hello, got " + typeName(body[0])
	}
	h, err := decodeHello(body[1:])
	switch {
	case err != nil:
		return "bad hello: " + err.Error()
	case h.Version != ProtocolVersion:
		return fmt.Sprintf("unsupported protocol version %d: this server speaks version %d only", h.Version, ProtocolVersion)
	case token != "" && subtle.ConstantTimeCompare([]byte(h.Token), []byte(token)) != 1:
		return "bad token"
	}
	return ""
}

// reject tells the client why before the connection closes; it is best effort.
func reject(nc net.Conn, reason string) {
	_, _ = nc.Write(AppendFrame(nil, Reject{Reason: reason}))
}

// sendHello sends a client's hello frame and waits for the answer. It gives up when ctx ends.
func sendHello(ctx context.Context, nc net.Conn, br *bufio.Reader, hello []byte, maxFrame int) (err error) {
	if dl, ok := ctx.Deadline(); ok {
		if err := nc.SetDeadline(dl); err != nil {
			return fmt.Errorf("set hello deadline: %w", err)
		}
	}
	// A deadline in the past unblocks the I/O below when ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() && err == nil {
			err = ctx.Err() // the deadline may already be in the past
			return
		}
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}()

	if _, err := nc.Write(hello); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	fr := frameReader{br: br, max: maxFrame}
	body, err := fr.next()
	if err != nil {
		return fmt.Errorf("read hello answer: %w", err)
	}
	f, err := DecodeFrame(body)
	if err != nil {
		return fmt.Errorf("read hello answer: %w", err)
	}
	switch f := f.(type) {
	case HelloOK:
		if f.Version != ProtocolVersion {
			return fmt.Errorf("server speaks protocol version %d, not %d", f.Version, ProtocolVersion)
		}
	case Reject:
		return fmt.Errorf("%w: %s", ErrRefused, f.Reason)
	default:
		return fmt.Errorf("expected hello-ok, got %s", typeName(f.frameType()))
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("clear hello deadline: %w", err)
	}
	return nil
}
