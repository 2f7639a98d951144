package node

import (
	"io"
	"testing"
	"time"
)

// TestSlowWriteLeavesAKeepaliveDeadlineAhead: a directed write slower than 1.5× the
// client's keep-alive leaves the connection's write deadline ahead, not in the past, where
// mochi's next write (a PINGRESP) would fail at once. The client is a slow reader: the
// write fills the socket buffers and waits for it; meanwhile the client pings, as a client
// does, and mochi's PINGRESP waits behind the write.
func TestSlowWriteLeavesAKeepaliveDeadlineAhead(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	cfg := faultConfig(t, "ka-1")
	cfg.Lease.Duration = 10 * time.Second // the write is not cut short by the lease
	n := startFaultNode(t, cfg, env.coord(t), env.store(t))
	const keepAlive = 2 // seconds: mochi's deadlines are 1.5× that, 3s
	k := dialKeepAlive(t, n.Member().MQTTAddr, "ka", 4, keepAlive)
	_ = k.c.SetDeadline(time.Now().Add(30 * time.Second))
	// SUBSCRIBE inbox/ka at QoS 1 (packet id 1); the SUBACK grants it.
	sub := append([]byte{0x82, 13, 0, 1, 0, 8}, "inbox/ka\x01"...)
	if _, err := k.c.Write(sub); err != nil {
		t.Fatal(err)
	}
	var suback [5]byte
	if _, err := io.ReadFull(k.r, suback[:]); err != nil || suback != [5]byte{0x90, 3, 0, 1, 1} {
		t.Fatalf("SUBACK %x, %v", suback, err)
	}
	var st *clientState
	faultWaitFor(t, 5*time.Second, "client ready with a valid lease", func() bool {
		st = n.clients.get("ka")
		return st != nil && st.ready.Load() && n.blocked(st) == ""
	})
	// Zeros, for this raw client to skip: far more than the sockets buffer while it does
	// not read (a few MB on loopback), so the write waits for the reader.
	big := make([]byte, 32<<20)
	wrote := make(chan error, 1)
	start := time.Now()
	go func() { wrote <- n.writeToClient(st, big) }()
	// The client pings a second into the write and reads nothing for 3.2s in all.
	time.Sleep(time.Second)
	if _, err := k.c.Write([]byte{0xC0, 0x00}); err != nil { // PINGREQ
		t.Fatal(err)
	}
	time.Sleep(time.Until(start.Add(3200 * time.Millisecond)))
	select {
	case err := <-wrote:
		t.Fatalf("the write ended (%v) before the client read anything: the test needs it slower than 3s", err)
	default:
	}
	if _, err := io.CopyN(io.Discard, k.r, int64(len(big))); err != nil {
		t.Fatalf("reading the slow write: %v", err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("the slow write failed: %v", err)
	}
	took := time.Since(start)
	var resp [2]byte
	if _, err := io.ReadFull(k.r, resp[:]); err != nil || resp != [2]byte{0xD0, 0x00} {
		t.Fatalf("after a write of %v (keep-alive %ds): PINGRESP %x, %v; mochi's write failed on the deadline left behind",
			took.Round(time.Millisecond), keepAlive, resp, err)
	}
}
