package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
)

// MinAdminTokenLen is the shortest admin token accepted.
const MinAdminTokenLen = 16

// validateExposure refuses a configuration that serves something sensitive, unauthenticated,
// beyond this machine: the internal channel (anyone who reaches it can hand any client a
// message, or kick it) or the profiler (the command line, with any secret given as a flag,
// and CPU-costly profiles).
func (c Config) validateExposure() error {
	if !isLoopback(c.InternalAddr) && c.WireToken == "" && !mutualTLS(c.InternalTLS) {
		return &FieldError{Field: "InternalAddr", Value: c.InternalAddr, Err: errors.New("not a loopback address and the internal channel is not authenticated: " +
			"give every node and router the same WireToken, or mutual TLS (InternalTLS); or listen on 127.0.0.1")}
	}
	if c.AdminToken != "" && len(c.AdminToken) < MinAdminTokenLen {
		return &FieldError{Field: "AdminToken", Err: fmt.Errorf("the token is %d characters; the minimum is %d", len(c.AdminToken), MinAdminTokenLen)}
	}
	if c.Pprof && c.AdminToken == "" && !isLoopback(c.AdminAddr) {
		return &FieldError{Field: "Pprof", Err: fmt.Errorf("with AdminAddr %q, not a loopback address: give AdminToken (every /debug/pprof request then needs "+
			"Authorization: Bearer <token>), or listen on 127.0.0.1", c.AdminAddr)}
	}
	return nil
}

// mutualTLS reports whether a listener's TLS configuration requires client certificates
// signed by a CA it trusts: without that, TLS encrypts but does not say who is calling.
func mutualTLS(cfg *tls.Config) bool {
	return cfg != nil && cfg.ClientAuth == tls.RequireAndVerifyClientCert && cfg.ClientCAs != nil
}

// isLoopback reports whether a listen address host:port binds loopback only: an IP in
// 127.0.0.0/8, ::1, or "localhost". An empty host or an unspecified address (":7883",
// "0.0.0.0:7883", "[::]:7883") binds every interface; any other name is taken as reachable
// from elsewhere, since what it resolves to is not known when the configuration is checked.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
