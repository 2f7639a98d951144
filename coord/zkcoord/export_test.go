package zkcoord

import "time"

// What the tests read of a coordinator's session.

// SessionID is the current ZooKeeper session id (0 while none).
func (c *Coordinator) SessionID() int64 { return c.conn.SessionID() }

// SessionTimeout is the session timeout asked for (NegotiatedSessionTimeout: the one granted).
func (c *Coordinator) SessionTimeout() time.Duration { return c.cfg.SessionTimeout }

// NegotiatedSessionTimeout is the session timeout the servers granted: the shortest one
// granted on any connection so far, or zero before the first.
func (c *Coordinator) NegotiatedSessionTimeout() time.Duration {
	return time.Duration(c.negotiated.Load())
}

// LastHeard is the send time of the latest request the ensemble answered in the current
// session (H of coord.State's rule); zero before the first answer.
func (c *Coordinator) LastHeard() time.Time {
	l := c.prober.Load()
	if l.Session == 0 || l.Session != c.conn.SessionID() {
		return time.Time{}
	}
	return l.Heard
}
