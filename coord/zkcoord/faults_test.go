package zkcoord_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/zkcoord"
	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

const sessionTimeout = 2 * time.Second

// TestSurvivesLossOfOneServerThenTheLeader stops a follower (the watch still sees a member
// join), brings it back, then stops the leader (a new leader is elected and the watch still
// sees a member leave). A registered member stays registered under its first epoch
// throughout: one server down never costs a session.
func TestSurvivesLossOfOneServerThenTheLeader(t *testing.T) {
	e := testenv.Ensemble(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	node := open(t, e.Addrs(), "/sb", sessionTimeout)
	watcher := open(t, e.Addrs(), "/sb", sessionTimeout)
	watch, err := watcher.WatchMembers(ctx)
	coordtest.Must(t, err)
	reg, st0 := coordtest.RegisterSeen(ctx, t, node, watch, "node-1")

	// Stop a follower.
	leader, err := e.Leader(ctx)
	coordtest.Must(t, err)
	var follower *backends.ZKServer
	for _, s := range e.Servers() {
		if s != leader {
			follower = s
			break
		}
	}
	coordtest.Must(t, follower.Stop())
	coordtest.Must(t, e.WaitQuorum(ctx))
	// The view stays correct: a member joining now is seen.
	other := open(t, e.Addrs(), "/sb", sessionTimeout)
	reg2, _ := register(ctx, t, other, "node-2")
	coordtest.WaitMembers(t, watch, 10*time.Second, "node-2 seen with one server down",
		func(ms []coord.Member) bool { return len(ms) == 2 })

	// Bring the follower back, then stop the leader: a new leader is elected.
	coordtest.Must(t, follower.Start())
	coordtest.Must(t, e.WaitServing(ctx))
	coordtest.Must(t, leader.Stop())
	coordtest.Must(t, e.WaitQuorum(ctx))
	newLeader, err := e.Leader(ctx)
	if err != nil || newLeader == leader {
		t.Fatalf("no new leader after stopping %d: %v", leader.ID, err)
	}
	// A member leaving is seen through the new leader.
	coordtest.Must(t, reg2.Deregister(ctx))
	coordtest.WaitMembers(t, watch, 10*time.Second, "node-2 leaves after the leader stopped",
		func(ms []coord.Member) bool { return len(ms) == 1 && ms[0].ID == "node-1" })
	// node-1 stayed registered under its first epoch throughout.
	st, _ := reg.Status()
	if !st.Live() || st.Epoch != st0.Epoch {
		t.Fatalf("node-1 status %+v, want live with epoch %d", st, st0.Epoch)
	}
	ms, err := watcher.Members(ctx)
	coordtest.Must(t, err)
	if len(ms) != 1 || ms[0].Epoch != st0.Epoch {
		t.Fatalf("members = %+v, want node-1 epoch %d", ms, st0.Epoch)
	}
}

// TestQuorumLossFencesThenReRegisters stops two of three servers: the registration is
// suspended, fences itself FenceAfter(session timeout) after the last request the ensemble
// answered, and registers again with a new epoch when the servers return.
func TestQuorumLossFencesThenReRegisters(t *testing.T) {
	e := testenv.Ensemble(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	node := open(t, e.Addrs(), "/sb", sessionTimeout)
	reg, st0 := register(ctx, t, node, "node-1")
	servers := e.Servers()
	// Timed from before the stops: the client loses its server when the first one lands.
	lost := time.Now()
	for _, s := range servers[:2] {
		coordtest.Must(t, s.Stop())
	}
	coordtest.WaitStatus(t, reg, 10*time.Second, "suspended", func(s coord.Status) bool { return s.State != coord.Registered })
	fenced := coordtest.WaitStatus(t, reg, 10*time.Second, "fenced", func(s coord.Status) bool { return s.State == coord.Fenced })
	heard := node.LastHeard()
	if heard.Before(lost.Add(-sessionTimeout / 2)) {
		// Probes go out every T/6: one was answered shortly before the servers went.
		t.Fatalf("last answered send %v before the servers were stopped", lost.Sub(heard))
	}
	if d := fenced.Since.Sub(heard); d < coord.FenceAfter(sessionTimeout) {
		t.Fatalf("fenced %v after the last answered send, before FenceAfter(%v) = %v",
			d, sessionTimeout, coord.FenceAfter(sessionTimeout))
	}
	t.Logf("fenced %v after the stops began, %v after the last answered send",
		fenced.Since.Sub(lost).Round(time.Millisecond), fenced.Since.Sub(heard).Round(time.Millisecond))
	for _, s := range servers[:2] {
		coordtest.Must(t, s.Start())
	}
	st := coordtest.WaitStatus(t, reg, 30*time.Second, "registered again", func(s coord.Status) bool { return s.State == coord.Registered })
	if st.Epoch == st0.Epoch {
		t.Fatalf("re-registered with the fenced epoch %d", st.Epoch)
	}
	ms, err := node.Members(ctx)
	coordtest.Must(t, err)
	if len(ms) != 1 || ms[0].Epoch != st.Epoch {
		t.Fatalf("members = %+v, want node-1 at epoch %d", ms, st.Epoch)
	}
}

// TestSessionExpiryReRegisters cuts one client off from a healthy ensemble for longer than
// its session timeout, so the ensemble expires the session: on reconnect the client gets a
// new session and the registration comes back with a new epoch.
func TestSessionExpiryReRegisters(t *testing.T) {
	e := shared.Ensemble(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var bridge testenv.Bridge
	root := "/expiry-" + coordtest.Instance()
	node := open(t, e.Addrs(), root, sessionTimeout, func(c *zkcoord.Config) { c.Dial = bridge.Dial })
	watcher := open(t, e.Addrs(), root, sessionTimeout)
	watch, err := watcher.WatchMembers(ctx)
	coordtest.Must(t, err)
	reg, st0 := register(ctx, t, node, "node-1")
	sess0 := node.SessionID()
	coordtest.WaitMembers(t, watch, 5*time.Second, "registered", func(ms []coord.Member) bool { return len(ms) == 1 })

	bridge.Cut()
	// The ensemble expires the session and deletes the entry: the watcher sees it leave.
	cut := time.Now()
	coordtest.WaitMembers(t, watch, 3*sessionTimeout, "entry deleted by session expiry", func(ms []coord.Member) bool { return len(ms) == 0 })
	t.Logf("entry left the live set %v after the cut (session timeout %v)", time.Since(cut).Round(time.Millisecond), sessionTimeout)
	coordtest.WaitStatus(t, reg, 3*sessionTimeout, "fenced while cut off", func(s coord.Status) bool { return s.State == coord.Fenced })
	bridge.Restore()
	st := coordtest.WaitStatus(t, reg, 20*time.Second, "registered again", func(s coord.Status) bool { return s.State == coord.Registered })
	if st.Epoch == st0.Epoch {
		t.Fatalf("epoch unchanged after expiry: %d", st.Epoch)
	}
	if node.SessionID() == sess0 {
		t.Fatalf("session id unchanged after expiry")
	}
	set := coordtest.WaitMembers(t, watch, 5*time.Second, "back in the live set", func(ms []coord.Member) bool { return len(ms) == 1 })
	if set[0].Epoch != st.Epoch {
		t.Fatalf("watched epoch %d, registration epoch %d", set[0].Epoch, st.Epoch)
	}
}

// TestReconnectPastAFrozenServerKeepsTheSession: the link drops and the library's next dial
// reaches a server that accepts the connection and never answers (a SIGSTOPped ZooKeeper,
// whose kernel still completes TCP handshakes). The library would wait ten receive timeouts
// (6⅔ session timeouts) for its connect response, fenced all along; bounded by the session
// timeout over the number of servers, it goes on to a healthy server while the session
// lives, and the registration keeps its session and its epoch.
func TestReconnectPastAFrozenServerKeepsTheSession(t *testing.T) {
	const timeout = 4 * time.Second // a second of the bound's 4/3s and the fence's 3.6s spare
	e := shared.Ensemble(t)
	frozen := testenv.StartSilent(t)
	var (
		mu      sync.Mutex
		current net.Conn
		freeze  atomic.Bool
		dials   atomic.Int32
	)
	dial := func(network, address string, d time.Duration) (net.Conn, error) {
		if freeze.CompareAndSwap(true, false) {
			address = frozen.Addr
		}
		dials.Add(1)
		conn, err := net.DialTimeout(network, address, d)
		if err == nil {
			mu.Lock()
			current = conn
			mu.Unlock()
		}
		return conn, err
	}
	ctx := testenv.Context(t, 30*time.Second)
	c, err := zkcoord.New(ctx, zkcoord.Config{Servers: e.Addrs(), Dial: dial,
		Settings: coord.Settings{Root: "/frozen-" + coordtest.Instance(), SessionTimeout: timeout, Logger: testenv.Logger(t)}})
	coordtest.Must(t, err)
	defer c.Close()
	reg, err := c.Register(ctx, coordtest.NewMember("node-1"))
	coordtest.Must(t, err)
	st0, changed := reg.Status()
	sess := c.SessionID()

	freeze.Store(true)
	dialled := dials.Load() // the frozen server's dial and a healthy one's follow
	dropped := time.Now()
	mu.Lock()
	current.Close()
	mu.Unlock()
	select {
	case <-frozen.Accepted:
	case <-ctx.Done():
		t.Fatal("the library never dialled the frozen server")
	}
	deadline := time.After(2 * timeout)
	for st := st0; ; {
		if !st.Live() || st.Epoch != st0.Epoch {
			t.Fatalf("%v after the link dropped: %+v (epoch %d before); the library waited for the frozen server", time.Since(dropped), st, st0.Epoch)
		}
		if st.State == coord.Registered && dials.Load() >= dialled+2 && c.SessionID() == sess {
			t.Logf("MEASURED: registered again under the same session and epoch %v after the link dropped, past a frozen server (%d dials)",
				time.Since(dropped).Round(time.Millisecond), dials.Load()-dialled)
			return
		}
		select {
		case <-changed:
		case <-time.After(20 * time.Millisecond): // the session id and the dials have no channel
		case <-deadline:
			t.Fatalf("not registered again within %v of the link dropping: %+v, %d dials since", 2*timeout, st, dials.Load()-dialled)
		}
		st, changed = reg.Status()
	}
}

// TestSilentServerIsLeftBeforeTheRegistrationSuspends: the server the client is connected
// to goes silent (frozen, or behind a dead route: the connection stays open and nothing
// comes back). The library would notice only after its receive timeout (2T/3), and every
// node on that server would count as Suspended — not ready for the load balancer — from T/3
// until then. The coordinator leaves a server that lets a probe go unanswered for T/4, so
// the registration is Suspended only while the library reconnects (Down), and stays in its
// session and epoch on another server.
func TestSilentServerIsLeftBeforeTheRegistrationSuspends(t *testing.T) {
	const timeout = 5 * time.Second // the longest the shared ensemble grants (20 ticks of 250ms)
	e := shared.Ensemble(t)
	var proxies []*testenv.Proxy
	var servers []string
	for _, a := range e.Addrs() {
		p := testenv.StartProxy(t, a)
		proxies, servers = append(proxies, p), append(servers, p.Addr)
	}
	var (
		mu      sync.Mutex
		current string
		frozen  time.Time
		leftAt  time.Time // when the connection to the silent server was closed
	)
	dial := func(network, address string, d time.Duration) (net.Conn, error) {
		mu.Lock()
		current = address
		mu.Unlock()
		conn, err := net.DialTimeout(network, address, d)
		if err != nil {
			return nil, err
		}
		// Leaving is the close of the connection, which comes before the library sees it
		// closed and reconnects (while the registration is Suspended, as it may be).
		return &onClose{Conn: conn, f: func() {
			mu.Lock()
			defer mu.Unlock()
			if !frozen.IsZero() && leftAt.IsZero() && address == current {
				leftAt = time.Now()
			}
		}}, nil
	}
	left := func() (time.Duration, bool) {
		mu.Lock()
		defer mu.Unlock()
		return leftAt.Sub(frozen).Round(time.Millisecond), !leftAt.IsZero()
	}
	ctx := testenv.Context(t, 30*time.Second)
	c := open(t, servers, "/silent-"+coordtest.Instance(), timeout, func(cfg *zkcoord.Config) { cfg.Dial = dial })
	reg, st0 := register(ctx, t, c, "node-1")
	if c.NegotiatedSessionTimeout() != timeout {
		t.Fatalf("granted %v, want %v", c.NegotiatedSessionTimeout(), timeout)
	}
	sess := c.SessionID()

	mu.Lock()
	frozen = time.Now()
	for i, s := range servers {
		if s == current {
			proxies[i].Blackhole()
		}
	}
	mu.Unlock()
	var suspended time.Duration // in all, while the library reconnected
	st, changed := reg.Status()
	for end := time.After(timeout); ; {
		after, ok := left()
		switch {
		case st.State == coord.Suspended && !ok:
			t.Fatalf("Suspended %v after the server went silent, still connected to it", time.Since(frozen).Round(time.Millisecond))
		case st.State != coord.Registered && st.State != coord.Suspended, st.Epoch != st0.Epoch:
			t.Fatalf("%v after the server went silent (left it %v after): %+v (epoch %d before)",
				time.Since(frozen).Round(time.Millisecond), after, st, st0.Epoch)
		}
		was := st
		select {
		case <-changed:
			st, changed = reg.Status()
			if was.State == coord.Suspended {
				suspended += st.Since.Sub(was.Since)
			}
			continue
		case <-end:
		}
		break
	}
	after, _ := left()
	if st.State != coord.Registered || c.SessionID() != sess {
		t.Fatalf("%v after the server went silent (left it %v after): %+v, session %x (was %x)", timeout, after, st, c.SessionID(), sess)
	}
	t.Logf("MEASURED: left the silent server %v after it went silent; Suspended %v in all, while reconnecting; same session and epoch",
		after, suspended.Round(time.Millisecond))
}

// onClose is a connection that calls f when it is first closed, before it closes.
type onClose struct {
	net.Conn
	once sync.Once
	f    func()
}

func (c *onClose) Close() error {
	c.once.Do(c.f)
	return c.Conn.Close()
}
