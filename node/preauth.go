package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Before a client has authenticated it may hold only what the listener grants it. mochi
// (v2.7.9) starts a goroutine per connection, reads the CONNECT without a deadline and
// allocates the CONNECT's declared size before any hook runs; so the listener admits a
// connection against the pending caps, does the TLS handshake and reads the CONNECT itself
// (its fixed header first), under one deadline, and hands mochi only a connection whose CONNECT is
// small enough. mochi replaces the deadline with its keepalive deadline once OnConnect has
// admitted the client (Client.refreshDeadline, its only call to SetDeadline).

var (
	// errNotConnect: the first packet is not a CONNECT (mochi would close it too).
	errNotConnect = errors.New("first packet is not CONNECT")
	// errConnectTooLarge: the CONNECT declares more than Limits.MaxConnectSize bytes.
	errConnectTooLarge = errors.New("CONNECT larger than the limit")
	// errMalformedLength: a remaining length longer than the 4 bytes MQTT allows.
	errMalformedLength = errors.New("malformed remaining length")
)

// readConnectHeader reads the first packet's fixed header from r, and nothing past it, and
// returns its bytes and the remaining length it declares: a CONNECT (first byte 0x10: type 1, reserved flags 0) whose remaining
// length is at most max. It decodes the remaining length as mochi does (packets.DecodeLength
// agrees with it on every encoding of at most 4 bytes, the only ones it lets through), and
// refuses as soon as the value read so far exceeds max, so a declared size is never waited
// for, let alone allocated.
func readConnectHeader(r io.Reader, max uint32) ([]byte, uint32, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:1]); err != nil {
		return nil, 0, err
	}
	if hdr[0] != 0x10 {
		return nil, 0, fmt.Errorf("%w: first byte %#02x", errNotConnect, hdr[0])
	}
	var n uint32
	for i := 1; i < len(hdr); i++ {
		if _, err := io.ReadFull(r, hdr[i:i+1]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, 0, err
		}
		n |= uint32(hdr[i]&0x7f) << (7 * (i - 1))
		if n > max {
			return nil, 0, fmt.Errorf("%w: at least %d bytes declared, at most %d allowed", errConnectTooLarge, n, max)
		}
		if hdr[i]&0x80 == 0 {
			return hdr[:i+1], n, nil
		}
	}
	return nil, 0, errMalformedLength
}

// preauthConn is a connection as mochi sees it: the CONNECT the listener already read
// is replayed first, and the connection stays in its pendingSet until it is authenticated,
// answered (mochi's first write is the CONNACK, whatever its code) or closed.
type preauthConn struct {
	net.Conn
	raw    net.Conn // the TCP connection beneath, closed directly at shutdown
	ip     string   // the address its per-address count is under ("" while not known); guarded by set.mu
	set    *pendingSet
	prefix []byte // read by the listener, not yet by mochi; only mochi's reader touches it

	pending atomic.Bool
}

func (c *preauthConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func (c *preauthConn) Write(b []byte) (int, error) {
	if c.pending.Load() {
		c.set.release(c)
	}
	return c.Conn.Write(b)
}

// markAuthenticated ends the pre-authentication phase of the connection mochi knows as conn
// (a client's Net.Conn): its pending slot is given back. A no-op for other connections.
func markAuthenticated(conn net.Conn) {
	if c, ok := conn.(*preauthConn); ok {
		c.set.release(c)
	}
}

// pendingSet counts the listener's connections: those not yet authenticated (pending), in
// all and per source address, and all open ones. Safe for concurrent use.
type pendingSet struct {
	max     int   // pending connections in all
	perIP   int   // pending connections from one address; 0: no limit
	maxOpen int64 // open connections, pending or not
	exempt  addrSet

	mu     sync.Mutex
	conns  map[*preauthConn]struct{} // pending
	byIP   map[string]int            // pending, by address; no zero entries
	open   int64
	closed bool
}

func newPendingSet(max, perIP int, maxOpen int64, exempt addrSet) *pendingSet {
	return &pendingSet{max: max, perIP: perIP, maxOpen: maxOpen, exempt: exempt,
		conns: map[*preauthConn]struct{}{}, byIP: map[string]int{}}
}

// admit takes a pending slot for a new connection from address ip, or names the limit that
// refuses it ("" once the set is closed). An empty ip (not known yet: it comes in a PROXY
// header) takes no per-address share until assign gives it one.
func (p *pendingSet) admit(conn net.Conn, ip string) (*preauthConn, string) {
	if p.exempt.contains(ip) {
		ip = "" // no per-address share
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return nil, ""
	case ip != "" && p.perIP > 0 && p.byIP[ip] >= p.perIP:
		return nil, "pending_connects_per_ip"
	case len(p.conns) >= p.max:
		return nil, "pending_connects"
	case p.open >= p.maxOpen:
		return nil, "max_clients"
	}
	c := &preauthConn{Conn: conn, raw: conn, ip: ip, set: p}
	if tc, ok := conn.(*tls.Conn); ok {
		c.raw = tc.NetConn()
	}
	c.pending.Store(true)
	p.conns[c] = struct{}{}
	if ip != "" {
		p.byIP[ip]++
	}
	p.open++
	return c, ""
}

// assign gives a pending connection admitted without an address the address ip learnt
// since, taking its per-address share, or names the limit that refuses it (the caller
// closes it then; its slot is given back when its handler ends).
func (p *pendingSet) assign(c *preauthConn, ip string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.pending.Load() || c.ip != "" || p.exempt.contains(ip) {
		return ""
	}
	if p.perIP > 0 && p.byIP[ip] >= p.perIP {
		return "pending_connects_per_ip"
	}
	c.ip = ip
	p.byIP[ip]++
	return ""
}

// release gives back c's pending slot. Idempotent.
func (p *pendingSet) release(c *preauthConn) {
	if !c.pending.CompareAndSwap(true, false) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	if c.ip == "" {
		return
	}
	if p.byIP[c.ip]--; p.byIP[c.ip] <= 0 {
		delete(p.byIP, c.ip)
	}
}

// done records that c is closed and its handler finished.
func (p *pendingSet) done(c *preauthConn) {
	p.release(c)
	p.mu.Lock()
	p.open--
	p.mu.Unlock()
}

// closeAll refuses new connections and closes the pending ones (mochi does not know those
// still before their CONNECT, and would not close them).
func (p *pendingSet) closeAll() {
	p.mu.Lock()
	p.closed = true
	conns := make([]*preauthConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.raw.Close()
	}
}

// counts returns the pending and open connections.
func (p *pendingSet) counts() (pending int, open int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns), p.open
}

// addrIP is the IP address of a connection's remote address (the whole address for other
// kinds of address).
func addrIP(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok && tcp != nil {
		return tcp.IP.String()
	}
	if a == nil {
		return ""
	}
	return a.String()
}
