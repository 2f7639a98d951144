package zkcoord

import (
	"context"
	"encoding/binary"
	"net"
	"sync/atomic"
	"time"
)

// timeout is T, the shorter of the session timeout asked for and the one granted. The servers
// expire the session by the one granted; the one asked for is shorter only when they raised
// it (clamping it to 2-20 ticks), and timing by it then fences early, never late.
func (c *Coordinator) timeout() time.Duration {
	if n := c.negotiated.Load(); n > 0 && time.Duration(n) < c.cfg.SessionTimeout {
		return time.Duration(n)
	}
	return c.cfg.SessionTimeout
}

// sync is the prober's probe: a Sync (the package doc says why not a read). Close waits for
// the prober to return before it closes the connection, which flushes the library call.
//
// A server that leaves a probe unanswered for T/4 is left for the next at once, so that a
// reconnect and its probe usually come before OverdueAfter (T/3) suspends every node on a
// frozen server (SIGSTOP, a hung JVM) or a dead route; the library would wait its receive
// timeout (2T/3). With one server listed there is no next: the library would pause a second.
func (c *Coordinator) sync(ctx context.Context) (session int64, counts bool) {
	sess := c.conn.SessionID()
	on := c.link.Load()
	leave := time.AfterFunc(c.timeout()/4, func() {
		if on != nil && len(c.cfg.Servers) > 1 && on.Close() == nil {
			c.log.Warn("a ZooKeeper server left a probe unanswered; trying the next server",
				"server", on.RemoteAddr().String(), "after", c.timeout()/4)
		}
	})
	defer leave.Stop()
	_, err := call(ctx, func() (string, error) { return c.conn.Sync("/") })
	// Only if one session sent and got it: a new session's answer says nothing of the old.
	return sess, err == nil && sess != 0 && c.conn.SessionID() == sess
}

// dial dials with cfg.Dial and wraps the connection to learn the session timeout the server
// grants (go-zookeeper keeps it to itself) and to bound the wait for the connect response:
// the library waits ten receive timeouts (6⅔ T), and a frozen server still accepts
// connections in its kernel, so a client reconnecting to one would wait a minute, fenced,
// while two servers serve. The response must come within the session timeout over the
// number of servers (ZooKeeper's own client's connect timeout), or the library tries the next.
func (c *Coordinator) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := c.cfg.Dial(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	// The session lives by the granted timeout (the one asked for until one is).
	t := time.Duration(c.negotiated.Load())
	if t == 0 {
		t = c.cfg.SessionTimeout
	}
	s := &sniffConn{Conn: conn, granted: &c.negotiated, answerBy: time.Now().Add(t / time.Duration(len(c.cfg.Servers)))}
	_ = conn.SetDeadline(s.answerBy)
	c.link.Store(s)
	return s, nil
}

// sniffConn records the granted timeout from the first 12 bytes a server sends (the connect
// response's int32 length, int32 protocol version, int32 timeout in ms: a layout fixed by the
// protocol); until then no deadline is later than answerBy. Reads come from one goroutine at
// a time (the library's handshake, then its receive loop), so head needs no lock.
type sniffConn struct {
	net.Conn
	granted  *atomic.Int64 // lowest granted timeout so far, in nanoseconds
	head     [12]byte
	n        int
	answerBy time.Time
	answered atomic.Bool
}

func (s *sniffConn) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	if s.n < len(s.head) && n > 0 {
		s.n += copy(s.head[s.n:], p[:n])
		if s.n == len(s.head) {
			s.answered.Store(true)
			// A zero timeout comes with a zero session id: the session expired.
			if ms := int32(binary.BigEndian.Uint32(s.head[8:12])); ms > 0 {
				d := int64(time.Duration(ms) * time.Millisecond)
				for old := s.granted.Load(); old == 0 || d < old; old = s.granted.Load() {
					if s.granted.CompareAndSwap(old, d) {
						break
					}
				}
			}
		}
	}
	return n, err
}

func (s *sniffConn) SetDeadline(t time.Time) error      { return s.Conn.SetDeadline(s.bound(t)) }
func (s *sniffConn) SetReadDeadline(t time.Time) error  { return s.Conn.SetReadDeadline(s.bound(t)) }
func (s *sniffConn) SetWriteDeadline(t time.Time) error { return s.Conn.SetWriteDeadline(s.bound(t)) }

// bound is t, or answerBy if that is sooner and the connect response has not come.
func (s *sniffConn) bound(t time.Time) time.Time {
	if !s.answered.Load() && (t.IsZero() || t.After(s.answerBy)) {
		return s.answerBy
	}
	return t
}
