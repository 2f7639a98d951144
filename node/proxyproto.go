package node

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"

	proxyproto "github.com/pires/go-proxyproto"
)

// With ProxyProtocol on, a node behind HAProxy or a cloud load balancer learns each client's
// address from the PROXY protocol header (v1 text or v2 binary) the proxy sends first, so its
// per-address limits and its logs see the client, not the proxy. As EMQX does with
// `proxy_protocol = true`, the header is required: a connection from a source outside the
// trusted prefixes is closed at accept (anyone could otherwise claim any address), and one
// from a trusted source without a valid header is closed before anything else is read.

// errProxyHeader ends a connection from a trusted source whose PROXY header is missing or
// malformed.
var errProxyHeader = errors.New("PROXY protocol header missing or invalid")

// proxyPolicy says which sources may send PROXY headers. Read-only after construction.
type proxyPolicy struct {
	trusted []netip.Prefix
}

// trusts reports whether a connection from a may carry a PROXY header.
func (p *proxyPolicy) trusts(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, pfx := range p.trusted {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}

// proxiedConn is a connection whose remote address came in its PROXY header. The bytes
// the header's reader buffered past the header are read first.
type proxiedConn struct {
	net.Conn
	r      *bufio.Reader
	remote net.Addr
}

func (c *proxiedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
func (c *proxiedConn) RemoteAddr() net.Addr       { return c.remote }

// proxyHeaderBuffer holds a v1 header (at most 107 bytes) or a v2 header's fixed part; a v2
// header's addresses and TLVs are read through it.
const proxyHeaderBuffer = 256

// readProxyHeader reads conn's PROXY header (the caller has set the connect deadline, so a
// source that sends nothing is closed in time) and returns the connection as the client's.
// A LOCAL header (a proxy's own health check) keeps the proxy's address.
func readProxyHeader(conn net.Conn) (net.Conn, error) {
	r := bufio.NewReaderSize(conn, proxyHeaderBuffer)
	h, err := proxyproto.Read(r)
	if err != nil {
		if isTimeout(err) {
			return nil, fmt.Errorf("read PROXY header: %w", err)
		}
		return nil, fmt.Errorf("%w: %w", errProxyHeader, err)
	}
	remote := conn.RemoteAddr()
	if h.Command.IsProxy() {
		if src, ok := h.SourceAddr.(*net.TCPAddr); ok {
			remote = src
		} else {
			return nil, fmt.Errorf("%w: source %v is not a TCP address", errProxyHeader, h.SourceAddr)
		}
	}
	return &proxiedConn{Conn: conn, r: r, remote: remote}, nil
}
