package node

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// slowConn delays each Write while delay is set (a client behind a slow link) and records
// the last write deadline set.
type slowConn struct {
	net.Conn
	delay atomic.Int64 // nanoseconds
	mu    sync.Mutex
	wd    time.Time
}

func (c *slowConn) Write(b []byte) (int, error) {
	time.Sleep(time.Duration(c.delay.Load()))
	return c.Conn.Write(b)
}

func (c *slowConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wd = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

// TestSlowWriteLeavesAKeepaliveDeadlineAhead: a directed write slower than 1.5× the
// client's keep-alive leaves the connection's write deadline ahead, not in the past, where
// mochi's next write (a PINGRESP) would fail at once.
func TestSlowWriteLeavesAKeepaliveDeadlineAhead(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	cfg := faultConfig(t, "ka-1")
	cfg.Lease.Duration = 10 * time.Second // the write is not cut short by the lease
	n := startFaultNode(t, cfg, env.coord(t), env.store(t))
	_, st := connectReady(t, n, "ka", testenv.MQTTOptions{CleanStart: true, KeepAlive: 2})
	st.cl.Lock()
	sc := &slowConn{Conn: st.cl.Net.Conn}
	sc.delay.Store(int64(3200 * time.Millisecond)) // longer than 1.5× the keep-alive
	st.cl.Net.Conn = sc
	st.cl.Unlock()
	err := n.writeToClient(st, []byte{0xD0, 0x00}) // a PINGRESP
	sc.delay.Store(0)
	if err != nil {
		t.Fatal(err)
	}
	sc.mu.Lock()
	wd := sc.wd
	sc.mu.Unlock()
	if wd.IsZero() || !wd.After(time.Now()) {
		t.Fatalf("the write deadline left for mochi's next write is %v from now", time.Until(wd).Round(time.Millisecond))
	}
}
