package wire

import "errors"

var (
	// ErrConnLost means the connection broke while a call was pending or before it was sent.
	// The outcome is unknown: the request may or may not have been carried out, so a
	// deliverer must treat the message as not delivered (put it in the mailbox).
	ErrConnLost = errors.New("connection lost: outcome unknown")
	// ErrClosed means the Conn, Server or Pool was closed by its owner. Calls pending on a
	// Conn when it is closed get an error matching both ErrClosed and ErrConnLost.
	ErrClosed = errors.New("closed")
	// ErrRefused means the server refused the hello (bad token, magic or version); the
	// error text carries the server's reason.
	ErrRefused = errors.New("hello refused")
	// ErrMalformed means a frame could not be decoded.
	ErrMalformed = errors.New("malformed frame")
	// ErrFrameTooLarge means a frame's length exceeds the maximum frame size.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrInvalid means a Conn refused to send a request that fails validation (a Deliver
	// without a session or messages, a Kick without a session, ...); nothing was sent. A
	// server answers such a request from another client with StatusBadRequest.
	ErrInvalid = errors.New("invalid request")
)
