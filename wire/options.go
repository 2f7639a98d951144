package wire

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"
)

// ServerOptions configures a Server. Zero fields take the defaults of DefaultServerOptions.
type ServerOptions struct {
	// Token is the token a client's hello must carry; "" accepts any hello.
	Token string
	// MaxFrame limits a request frame's body length.
	MaxFrame int
	// MaxPending bounds the messages of one connection that await their reply or whose
	// answer is not written yet (Kick, Drain and Ping answers count until written). While
	// it is reached the connection's reader reads nothing more, which pushes back on the
	// client through TCP, until replies bring it under. One Deliver is read whole, so it
	// may take the count over by up to MaxMsgs-1. A reader held back does not answer
	// pings either: a node that leaves MaxPending messages unanswered for longer than the
	// client's IdleTimeout loses the connection.
	MaxPending int
	// HelloTimeout bounds how long a new connection may take to send its hello.
	HelloTimeout time.Duration
	// IdleTimeout closes a connection on which nothing arrived for that long (a client
	// pings every DialOptions.PingInterval, which must be well under it).
	IdleTimeout time.Duration
	// WriteTimeout bounds each write of answers, so that a client that stops reading
	// cannot hold the connection's writer forever; when it expires the connection closes.
	WriteTimeout time.Duration
	// Logger receives connection events, malformed frames and handler misbehaviour.
	Logger *slog.Logger

	// onBackPressure, when set, is called on a connection's reader each time it stops at
	// MaxPending; tests use it to see the reader held back.
	onBackPressure func()
}

// DefaultServerOptions returns the defaults.
func DefaultServerOptions() ServerOptions {
	return ServerOptions{
		Token:        "",              // no authentication
		MaxFrame:     DefaultMaxFrame, // 16 MiB
		MaxPending:   100_000,         // messages awaiting a reply, per connection
		HelloTimeout: 5 * time.Second,
		IdleTimeout:  10 * time.Second, // ten missed heartbeats at the default PingInterval
		WriteTimeout: 10 * time.Second,
		Logger:       slog.New(slog.DiscardHandler),
	}
}

// Validate checks the options without side effects; zero fields are valid (they take
// defaults).
func (o ServerOptions) Validate() error {
	if err := validateMaxFrame(o.MaxFrame); err != nil {
		return err
	}
	switch {
	case o.MaxPending < 0:
		return fmt.Errorf("max pending %d: must not be negative", o.MaxPending)
	case o.HelloTimeout < 0:
		return fmt.Errorf("hello timeout %v: must not be negative", o.HelloTimeout)
	case o.IdleTimeout < 0:
		return fmt.Errorf("idle timeout %v: must not be negative", o.IdleTimeout)
	case o.WriteTimeout < 0:
		return fmt.Errorf("write timeout %v: must not be negative", o.WriteTimeout)
	}
	return nil
}

// withDefaults replaces zero (and invalid, non-positive) fields with defaults.
func (o ServerOptions) withDefaults() ServerOptions {
	d := DefaultServerOptions()
	if o.MaxFrame <= 0 || o.MaxFrame > maxMaxFrame {
		o.MaxFrame = d.MaxFrame
	}
	if o.MaxPending <= 0 {
		o.MaxPending = d.MaxPending
	}
	if o.HelloTimeout <= 0 {
		o.HelloTimeout = d.HelloTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = d.WriteTimeout
	}
	if o.Logger == nil {
		o.Logger = d.Logger
	}
	return o
}

// DialOptions configures Dial and Pool. Zero fields take the defaults of DefaultDialOptions.
type DialOptions struct {
	// Token is sent in the hello.
	Token string
	// MaxFrame limits a frame's body length in both directions: a longer result closes the
	// connection, a longer request fails its call with ErrFrameTooLarge. It should not
	// exceed the server's MaxFrame, or an oversized request costs the whole connection.
	MaxFrame int
	// DialTimeout bounds connecting and the hello exchange.
	DialTimeout time.Duration
	// PingInterval is how often the Conn pings the server, so that both ends hear from
	// each other even when no request is pending. It must be shorter than IdleTimeout,
	// and well under the server's IdleTimeout.
	PingInterval time.Duration
	// IdleTimeout declares the connection lost when nothing arrived for that long (the
	// server is stopped, or the link is cut without a reset); pending calls then fail
	// with ErrConnLost.
	IdleTimeout time.Duration
	// Logger receives connection losses.
	Logger *slog.Logger
	// TLS, if set, makes connections TLS with this configuration (for mutual TLS, with a
	// client certificate); the server side wraps its listener with tls.NewListener.
	TLS *tls.Config
}

// DefaultDialOptions returns the defaults.
func DefaultDialOptions() DialOptions {
	return DialOptions{
		Token:        "",
		MaxFrame:     DefaultMaxFrame, // 16 MiB
		DialTimeout:  3 * time.Second,
		PingInterval: time.Second,
		IdleTimeout:  5 * time.Second, // five missed pongs
		Logger:       slog.New(slog.DiscardHandler),
	}
}

// Validate checks the options without side effects; zero fields are valid (they take
// defaults).
func (o DialOptions) Validate() error {
	if err := validateMaxFrame(o.MaxFrame); err != nil {
		return err
	}
	switch {
	case o.DialTimeout < 0:
		return fmt.Errorf("dial timeout %v: must not be negative", o.DialTimeout)
	case o.PingInterval < 0:
		return fmt.Errorf("ping interval %v: must not be negative", o.PingInterval)
	case o.IdleTimeout < 0:
		return fmt.Errorf("idle timeout %v: must not be negative", o.IdleTimeout)
	}
	if e := o.withDefaults(); e.PingInterval >= e.IdleTimeout {
		return fmt.Errorf("ping interval %v: must be shorter than the idle timeout %v", e.PingInterval, e.IdleTimeout)
	}
	return nil
}

func (o DialOptions) withDefaults() DialOptions {
	d := DefaultDialOptions()
	if o.MaxFrame == 0 {
		o.MaxFrame = d.MaxFrame
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = d.DialTimeout
	}
	if o.PingInterval == 0 {
		o.PingInterval = d.PingInterval
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	if o.Logger == nil {
		o.Logger = d.Logger
	}
	return o
}

func validateMaxFrame(n int) error {
	if n < 0 || n > maxMaxFrame {
		return fmt.Errorf("max frame %d: must be between 0 (default) and %d", n, maxMaxFrame)
	}
	return nil
}
