package node

import (
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// TestNoWriteAfterTheLeaseLapsed: the sender takes a message while the delivery lease is
// valid and then waits for mochi's client lock (held here, as mochi holds it while it
// writes to a slow socket). Meanwhile the node loses Redis and another node takes the
// session over (a revoke notice, then the lease wait, then its CONNACK). When the lock is
// released, the write checks again under it and does not happen: the node writes nothing
// while its lease is not valid, and the old session receives nothing after the new one's
// CONNACK.
func TestNoWriteAfterTheLeaseLapsed(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	c := env.coord(t)
	rs := &faultStore{Store: env.store(t)}
	cfg := faultConfig(t, "gap-1")
	cfg.Lease.Duration, cfg.Lease.Interval = 600*time.Millisecond, 100*time.Millisecond
	n := startFaultNode(t, cfg, c, rs)

	const id = "victim"
	cl, st := connectReady(t, n, id, testenv.MQTTOptions{CleanStart: true})

	// mochi holds the client lock while it writes one of its own packets (slow socket).
	st.cl.Lock()
	locked := true
	defer func() {
		if locked {
			st.cl.Unlock()
		}
	}()

	var mu sync.Mutex
	var answers []wire.Result
	ok := n.accept(st, wire.Deliver{
		Epoch: n.epoch.Load(), Client: id, Session: st.session, MaxWait: 60_000,
		Msgs: []wire.Msg{{ID: "m-late", Topic: "inbox/" + id, Payload: []byte("after the takeover"), QoS: 1, TTL: 60_000}},
	}, func(_ int, r wire.Result) { mu.Lock(); answers = append(answers, r); mu.Unlock() })
	if !ok {
		t.Fatal("accept refused")
	}
	// The sender has taken it (lease valid) and now waits for cl.Lock in writeToClient.
	faultWaitFor(t, 2*time.Second, "sender took the message", func() bool {
		st.ob.mu.Lock()
		defer st.ob.mu.Unlock()
		e := st.ob.byID["m-late"]
		return e != nil && e.state == entryWritten
	})

	// The node loses Redis; a CONNECT elsewhere cannot kick it directly, so it stores the
	// revoke notice and waits the lease out before answering its CONNACK.
	rs.failTakes.Store(true)
	ctx := testenv.Context(t, 5*time.Second)
	if err := rs.Store.Notify(ctx, cfg.ID, store.Notice{Kind: store.NoticeRevoke, Client: id, Session: st.session}); err != nil {
		t.Fatal(err)
	}
	stored := time.Now()
	time.Sleep(cfg.Lease.Duration + cfg.Lease.Duration/10 + 50*time.Millisecond)
	connack := time.Now() // the new session's CONNACK
	if n.lease.Valid() {
		t.Fatal("lease still valid; the test needs it lapsed")
	}
	if st.revoked.Load() {
		t.Fatal("session revoked; the node should not have been able to learn of the takeover")
	}
	t.Logf("revoke notice stored at +0, lease lapsed, new session's CONNACK at +%v", connack.Sub(stored).Round(time.Millisecond))

	// mochi's write ends; the sender goes on with the batch it took under the old lease.
	st.cl.Unlock()
	locked = false
	// The sender's attempt ends either way: the entry back in its queue, nothing written;
	// or written, and then acknowledged by the client (which acknowledges once its handler
	// has the message).
	faultWaitFor(t, 5*time.Second, "the sender's attempt ended", func() bool {
		st.ob.mu.Lock()
		defer st.ob.mu.Unlock()
		e := st.ob.byID["m-late"]
		return e == nil || e.state != entryWritten
	})
	select {
	case m := <-cl.Messages():
		t.Fatalf("the old session received %q (%q) at +%v, after the new session's CONNACK (+%v), "+
			"while the node's delivery lease had lapsed (valid=%v)", m.ID, m.Payload,
			time.Since(stored).Round(time.Millisecond), connack.Sub(stored).Round(time.Millisecond), n.lease.Valid())
	default:
	}
}
