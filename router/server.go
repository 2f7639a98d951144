package router

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/switchboard-mqtt/switchboard/lease"
)

// HTTPConfig bounds what a connection to the API may hold: how long it may take to send a
// request and to be answered, how long it may sit idle, and how many there may be. Go's
// HTTP server has no limit on any of these by default.
type HTTPConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers: from the connection's opening
	// (a connection that never sends a request is closed then, before any token is
	// checked) or, on a kept-alive connection, from the request's first byte. A client that
	// sends its headers slowly (slowloris) is cut off.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body.
	ReadTimeout time.Duration
	// WriteTimeout bounds answering a request, counted (as Go's server does) from the end
	// of its headers, so the time its body takes to arrive counts too. 0 means ReadTimeout
	// plus LongestAnswer plus WriteMargin. A value under LongestAnswer is refused: it would
	// cut off the answer to a message accepted after waiting its whole max_wait.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection on which no new request starts for this long.
	IdleTimeout time.Duration
	// MaxConnections caps the API's open connections; more wait, unaccepted, in the
	// listen backlog until one closes (the caller applies it to the listener).
	MaxConnections int
}

// WriteMargin is what a derived write timeout allows beyond ReadTimeout and LongestAnswer.
const WriteMargin = 10 * time.Second

// DefaultHTTPConfig returns the defaults.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // a batch body at the limits takes a fast link
		WriteTimeout:      0,                // ReadTimeout + LongestAnswer + WriteMargin: 1m31.2s at the defaults
		IdleTimeout:       60 * time.Second,
		MaxConnections:    10_000,
	}
}

// LongestAnswer is the longest a request may wait, once read, for its answer: a route
// look-up and a connection to the node, the largest max_wait and the answer grace, a
// second look-up and connection for a message the node refused, and queueing (which may
// wait for the client's node's delivery lease to run out; counted here at the default
// lease, since the nodes' leases are not known until they are live).
func (c Config) LongestAnswer() time.Duration {
	lookup := c.StoreTimeout + c.DialTimeout
	queue := 2*c.StoreTimeout + lease.MaxTellWait(nil) // as queueAll
	return 2*lookup + c.MaxMaxWait + c.AnswerGrace + queue
}

// writeTimeout is the write timeout in effect.
func (c Config) writeTimeout() time.Duration {
	if c.HTTP.WriteTimeout == 0 {
		return c.HTTP.ReadTimeout + c.LongestAnswer() + WriteMargin
	}
	return c.HTTP.WriteTimeout
}

// validateHTTP checks c.HTTP; errors name the field.
func (c Config) validateHTTP() error {
	h := c.HTTP
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"HTTP.ReadHeaderTimeout", h.ReadHeaderTimeout}, {"HTTP.ReadTimeout", h.ReadTimeout}, {"HTTP.IdleTimeout", h.IdleTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s %v: must be positive", d.field, d.v)
		}
	}
	switch {
	case h.ReadHeaderTimeout > h.ReadTimeout:
		return fmt.Errorf("HTTP.ReadHeaderTimeout %v: must not exceed HTTP.ReadTimeout %v", h.ReadHeaderTimeout, h.ReadTimeout)
	case h.WriteTimeout < 0:
		return fmt.Errorf("HTTP.WriteTimeout %v: must not be negative (0: derived)", h.WriteTimeout)
	case h.WriteTimeout > 0 && h.WriteTimeout < c.LongestAnswer():
		return fmt.Errorf("HTTP.WriteTimeout %v: shorter than the longest answer, %v (MaxMaxWait %v + AnswerGrace %v + store and lease bounds); "+
			"raise it, or give 0 to derive it", h.WriteTimeout, c.LongestAnswer(), c.MaxMaxWait, c.AnswerGrace)
	case h.MaxConnections <= 0:
		return fmt.Errorf("HTTP.MaxConnections %d: must be positive", h.MaxConnections)
	}
	return nil
}

// HTTPServer returns an http.Server for handler h (Handler or AuthHandler) with the
// limits of Config.HTTP; the caller caps its listener at MaxConnections.
func (r *Router) HTTPServer(h http.Handler) *http.Server {
	c := r.cfg.HTTP
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		// The read deadline bounds the request only: Go's server lifts it once the body is
		// read, so a long max_wait does not run into it (TestAnswerOutlastsReadTimeout).
		ReadTimeout:    c.ReadTimeout,
		WriteTimeout:   r.cfg.writeTimeout(),
		IdleTimeout:    c.IdleTimeout,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(r.log.With("component", "http").Handler(), slog.LevelDebug),
	}
}
