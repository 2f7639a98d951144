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
	// MaxInflight bounds concurrent handler calls per connection; when it is reached the
	// connection's reader waits, which pushes back on the client through TCP.
	MaxInflight int
	// HelloTimeout bounds how long a new connection may take to send its hello.
	HelloTimeout time.Duration
	// Logger receives connection events, malformed frames and handler panics.
	Logger *slog.Logger
}

// DefaultServerOptions returns the defaults.
func DefaultServerOptions() ServerOptions {
	return ServerOptions{
		Token:        "",              // no authentication
		MaxFrame:     DefaultMaxFrame, // 16 MiB
		MaxInflight:  4096,
		HelloTimeout: 5 * time.Second,
		Logger:       slog.New(slog.DiscardHandler),
	}
}

// Validate checks the options without side effects; zero fields are valid (they take
// defaults).
func (o ServerOptions) Validate() error {
	if err := validateMaxFrame(o.MaxFrame); err != nil {
		return err
	}
	if o.MaxInflight < 0 {
		return fmt.Errorf("max inflight %d: must not be negative", o.MaxInflight)
	}
	if o.HelloTimeout < 0 {
		return fmt.Errorf("hello timeout %v: must not be negative", o.HelloTimeout)
	}
	return nil
}

// withDefaults replaces zero (and invalid, non-positive) fields with defaults.
func (o ServerOptions) withDefaults() ServerOptions {
	d := DefaultServerOptions()
	if o.MaxFrame <= 0 || o.MaxFrame > maxMaxFrame {
		o.MaxFrame = d.MaxFrame
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = d.MaxInflight
	}
	if o.HelloTimeout <= 0 {
		o.HelloTimeout = d.HelloTimeout
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
	// Logger receives connection losses.
	Logger *slog.Logger
	// TLS, if set, makes connections TLS with this configuration (for mutual TLS, with a
	// client certificate); the server side wraps its listener with tls.NewListener.
	TLS *tls.Config
}

// DefaultDialOptions returns the defaults.
func DefaultDialOptions() DialOptions {
	return DialOptions{
		Token:       "",
		MaxFrame:    DefaultMaxFrame, // 16 MiB
		DialTimeout: 3 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	}
}

// Validate checks the options without side effects; zero fields are valid (they take
// defaults).
func (o DialOptions) Validate() error {
	if err := validateMaxFrame(o.MaxFrame); err != nil {
		return err
	}
	if o.DialTimeout < 0 {
		return fmt.Errorf("dial timeout %v: must not be negative", o.DialTimeout)
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
