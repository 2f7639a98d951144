package zkcoord_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/zkcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestFencedBeforeSessionExpiry cuts the only link between a registered member and a healthy
// ensemble, once refused (the client learns at once) and once blackholed (nothing passes and
// nothing closes, so go-zookeeper notices only after its receive timeout). Either way the
// registration is Suspended within a third of the session timeout and a probe interval,
// Fenced strictly before the ensemble deletes its ephemeral znode (as a second client, whose
// link is not cut, sees it), and registered again under a new epoch once the link heals.
func TestFencedBeforeSessionExpiry(t *testing.T) {
	e := shared.Ensemble(t)
	for _, mode := range []struct {
		name string
		cut  func(*testenv.Proxy)
	}{
		{"refused", (*testenv.Proxy).Cut},
		{"blackholed", (*testenv.Proxy).Blackhole},
	} {
		t.Run(mode.name, func(t *testing.T) {
			const timeout = sessionTimeout
			ctx := testenv.Context(t, 60*time.Second)
			root := "/fence-" + coordtest.Instance()
			proxy := testenv.StartProxy(t, e.Addrs()[0])
			node := open(t, []string{proxy.Addr}, root, timeout)
			reg, st0 := register(ctx, t, node, "node-1")
			if got := node.NegotiatedSessionTimeout(); got != timeout {
				t.Fatalf("negotiated session timeout %v, want %v", got, timeout)
			}
			path := root + "/nodes/node-1"
			obs := observe(t, e.Addrs(), path)
			select {
			case <-obs.Present:
			case <-ctx.Done():
				t.Fatal("the observer never saw the member's znode")
			}
			// The prober has an answer in the session: the record that times the fence.
			heardSince(t, node, time.Time{}, timeout)

			cut := time.Now()
			mode.cut(proxy)
			susp := coordtest.WaitStatus(t, reg, timeout, "suspended", func(s coord.Status) bool { return s.State != coord.Registered })
			if susp.State != coord.Suspended || susp.Epoch != st0.Epoch || !susp.Live() {
				t.Fatalf("after the cut: %+v, want suspended (and live) at epoch %d", susp, st0.Epoch)
			}
			fenced := coordtest.WaitStatus(t, reg, 2*timeout, "fenced", func(s coord.Status) bool { return s.State == coord.Fenced })
			heard := node.LastHeard() // the session is unchanged while cut off
			select {
			case <-obs.Gone:
			case <-time.After(3 * timeout):
				t.Fatal("the ensemble did not delete the znode within 3 session timeouts")
			}
			obs.Stop()

			ms := func(d time.Duration) int64 { return d.Milliseconds() }
			t.Logf("MEASURED zk %s: session timeout %v; suspended %dms, fenced %dms after the cut "+
				"(%dms after the last answered send, %dms before it); ensemble deleted the znode "+
				"between %dms and %dms after the cut (watch fired at %dms); fenced at least %dms before the deletion",
				mode.name, timeout, ms(susp.Since.Sub(cut)), ms(fenced.Since.Sub(cut)),
				ms(fenced.Since.Sub(heard)), ms(cut.Sub(heard)),
				ms(obs.LastPresent.Sub(cut)), ms(obs.GoneAt.Sub(cut)), ms(obs.WatchAt.Sub(cut)),
				ms(obs.LastPresent.Sub(fenced.Since)))

			// (a) Suspended within T/3 of the first unanswered probe; (b) fenced while the
			// ensemble still held the znode (a read after a sync is current at that instant).
			coordtest.CheckFence(t, timeout, cut, susp, fenced, obs)
			// Fenced by the rule: FenceAfter(T) after the last answered send, not much later.
			if d := fenced.Since.Sub(heard); d < coord.FenceAfter(timeout) || d > coord.FenceAfter(timeout)+coordtest.Late {
				t.Errorf("fenced %v after the last answered send, want %v (+%v)", d, coord.FenceAfter(timeout), coordtest.Late)
			}

			// (c) The link heals: registered again under a new epoch.
			proxy.Restore()
			st := coordtest.WaitStatus(t, reg, 30*time.Second, "registered again", func(s coord.Status) bool { return s.State == coord.Registered })
			if st.Epoch == st0.Epoch {
				t.Fatalf("re-registered with the fenced epoch %d", st.Epoch)
			}
		})
	}
}

// TestNegotiatedTimeoutRules asks for a session timeout above the ensemble's maximum (20
// ticks): the coordinator times itself by the one granted, not the one asked for.
func TestNegotiatedTimeoutRules(t *testing.T) {
	e := shared.Ensemble(t)
	ctx := testenv.Context(t, 30*time.Second)
	asked := 30 * e.TickTime()
	c := open(t, e.Addrs(), "/negotiated-"+coordtest.Instance(), asked)
	if got, want := c.NegotiatedSessionTimeout(), 20*e.TickTime(); got != want {
		t.Fatalf("negotiated session timeout %v, want the ensemble's maximum %v", got, want)
	}
	if got := c.SessionTimeout(); got != asked {
		t.Fatalf("SessionTimeout %v, want the one asked for, %v", got, asked)
	}
	if _, st := register(ctx, t, c, "node-1"); st.State != coord.Registered || st.Since.IsZero() {
		t.Fatalf("status %+v, want registered with Since set", st)
	}
	testenv.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if h := c.LastHeard(); time.Since(h) > 20*e.TickTime()/6+time.Second {
			return errors.New("last heard is not fresh: the prober does not run at the granted timeout's pace")
		}
		return nil
	})
}

// observe follows path from a client of its own on servers: a sync and a read every 10ms,
// and a watch for the deletion.
func observe(t *testing.T, servers []string, path string) *coordtest.Observation {
	t.Helper()
	conn, _, err := zk.Connect(servers, 5*time.Second, zk.WithLogger(quiet{}), zk.WithLogInfo(false))
	coordtest.Must(t, err)
	t.Cleanup(conn.Close) // after the observation's own cleanup
	read := func(context.Context) (bool, error) {
		if _, err := conn.Sync("/"); err != nil {
			return false, err
		}
		ok, _, err := conn.Exists(path)
		return ok, err
	}
	return coordtest.Observe(t, read, func(ctx context.Context) <-chan struct{} {
		deleted := make(chan struct{})
		go func() { // ends with ctx, or when the connection closes
			for ctx.Err() == nil {
				ok, _, w, err := conn.ExistsW(path)
				if !ok && err == nil {
					return // gone already: the read sees it
				}
				var retry <-chan time.Time
				if err != nil {
					w, retry = nil, time.After(10*time.Millisecond)
				}
				select {
				case <-retry:
				case ev := <-w:
					if ev.Type == zk.EventNodeDeleted {
						close(deleted)
						return
					}
				case <-ctx.Done():
				}
			}
		}()
		return deleted
	})
}

// behindProxy opens two clients on a fresh root named from prefix, a through a proxy the
// test can cut and b directly.
func behindProxy(t *testing.T, prefix string, timeout time.Duration) (proxy *testenv.Proxy, a, b *zkcoord.Coordinator) {
	t.Helper()
	e := shared.Ensemble(t)
	root := prefix + coordtest.Instance()
	proxy = testenv.StartProxy(t, e.Addrs()[0])
	return proxy, open(t, []string{proxy.Addr}, root, timeout), open(t, e.Addrs(), root, timeout)
}

// leaderBehindProxy is behindProxy with a elected (mon-a).
func leaderBehindProxy(ctx context.Context, t *testing.T, timeout time.Duration) (*testenv.Proxy, *zkcoord.Coordinator, coord.Leadership, *zkcoord.Coordinator) {
	t.Helper()
	proxy, a, b := behindProxy(t, "/leader-", timeout)
	la, err := a.Campaign(ctx, "monitor", "mon-a")
	coordtest.Must(t, err)
	return proxy, a, la, b
}

// blackholeUntilGivenUp cuts the leader's link silently and waits until it gives its
// leadership up, failing after a session timeout.
func blackholeUntilGivenUp(t *testing.T, proxy *testenv.Proxy, l coord.Leadership, timeout time.Duration) {
	t.Helper()
	proxy.Blackhole()
	select {
	case <-l.Done():
	case <-time.After(timeout):
		t.Fatal("leadership not given up within a session timeout of the cut")
	}
}

// TestLeadershipGivenUpOnACutLeavesNoCandidate: a leader whose link is down for a third of
// the session timeout gives its leadership up, and its Resign cannot reach the ensemble; the
// link comes back before the session expires. Its candidate znode, still the lowest, must not
// outlive the leadership, or no other candidate is ever elected while that session lives.
func TestLeadershipGivenUpOnACutLeavesNoCandidate(t *testing.T) {
	const timeout = 6 * time.Second
	ctx := testenv.Context(t, 90*time.Second)
	proxy, a, la, b := leaderBehindProxy(ctx, t, timeout)
	bch := coordtest.CampaignAsync(ctx, b, "monitor", "mon-b")
	sess := a.SessionID()
	cut := time.Now()
	blackholeUntilGivenUp(t, proxy, la, timeout)
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	rerr := la.Resign(rctx)
	cancel()
	t.Logf("gave up %v after the cut; resign: %v", time.Since(cut).Round(time.Millisecond), rerr)
	proxy.Restore()
	heardAgainInSession(t, a, sess, cut, timeout)
	select {
	case r := <-bch:
		coordtest.Must(t, r.Err)
	case <-time.After(3 * timeout):
		l, _ := b.Leader(ctx, "monitor")
		t.Fatalf("mon-b not elected %v after the cut, with a's session alive; Leader = %q", time.Since(cut).Round(time.Second), l)
	}
}

// TestFencedWriteRefusedOnceLeadershipGivenUp: a leader whose link is down for a third of the
// session timeout gives its leadership up while its session, and so its candidate znode, may
// live on: its fenced write must be refused as not the leader's, not left to a check of the
// znode that would pass once the link is back.
func TestFencedWriteRefusedOnceLeadershipGivenUp(t *testing.T) {
	const timeout = 6 * time.Second
	ctx := testenv.Context(t, 60*time.Second)
	proxy, a, la, _ := leaderBehindProxy(ctx, t, timeout)
	blackholeUntilGivenUp(t, proxy, la, timeout)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.SetQuarantine(wctx, coord.Quarantine{Node: "n1", Reason: "deposed"}, la); !errors.Is(err, coord.ErrNotLeader) {
		t.Fatalf("fenced write after the leadership was given up: %v, want ErrNotLeader", err)
	}
}

// TestCandidateMadeWhileItsAnswerWasLost: a's create of its candidate znode reaches the
// ensemble and is carried out, but the answer is lost and the link stays cut for longer than
// the library takes to give the create up; a's session survives the cut. The znode a never
// learned of must not stand (it would be the lowest, and lead for as long as the session
// lives): a candidate is elected once the link is back.
func TestCandidateMadeWhileItsAnswerWasLost(t *testing.T) {
	const timeout = 6 * time.Second
	ctx := testenv.Context(t, 90*time.Second)
	proxy, a, b := behindProxy(t, "/lost-create-", timeout)
	l, err := b.Campaign(ctx, "monitor", "warm") // the election's directory exists from here
	coordtest.Must(t, err)
	coordtest.Must(t, l.Resign(ctx))
	sess := a.SessionID()
	proxy.MuteRepliesAfter([]byte("_c_")) // the protected prefix of a candidate's name
	ach := coordtest.CampaignAsync(ctx, a, "monitor", "mon-a")
	testenv.Eventually(t, timeout, 10*time.Millisecond, func() error {
		if v, _ := b.Leader(ctx, "monitor"); v != "mon-a" {
			return errors.New("a's candidate znode not made yet")
		}
		return nil
	})
	proxy.Cut()
	time.Sleep(1500 * time.Millisecond) // the fault: cut longer than the client's retry of its one server
	proxy.Restore()
	heardAgainInSession(t, a, sess, time.Now(), timeout)
	bch := coordtest.CampaignAsync(ctx, b, "monitor", "mon-b")
	select {
	case r := <-ach:
		coordtest.Must(t, r.Err)
	case r := <-bch:
		coordtest.Must(t, r.Err)
	case <-time.After(3 * timeout):
		leader, _ := b.Leader(ctx, "monitor")
		t.Fatalf("nobody elected %v after the link came back; Leader = %q (a candidate nobody holds)", 3*timeout, leader)
	}
}

// heardAgainInSession waits until the ensemble has answered a request a sent after since,
// and fails unless a is still in session sess: the fault was meant to be shorter than the
// session timeout.
func heardAgainInSession(t *testing.T, a *zkcoord.Coordinator, sess int64, since time.Time, timeout time.Duration) {
	t.Helper()
	heardSince(t, a, since, timeout)
	if a.SessionID() != sess {
		t.Fatalf("a's session changed (%x → %x): the cut was meant to be shorter than the timeout", sess, a.SessionID())
	}
}

// heardSince waits up to within for the ensemble to answer a probe c sent after since.
func heardSince(t *testing.T, c *zkcoord.Coordinator, since time.Time, within time.Duration) {
	t.Helper()
	testenv.Eventually(t, within, 10*time.Millisecond, func() error {
		if !c.LastHeard().After(since) {
			return fmt.Errorf("the ensemble has answered no probe sent after %s", since.Format(time.StampMilli))
		}
		return nil
	})
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// TestBlackholedLeaderGivesUpFirst silences the link of a leader: it gives leadership up
// within a third of the session timeout and a probe interval, before the ensemble expires its
// session and the other candidate is elected; its fenced write is refused once the link heals.
func TestBlackholedLeaderGivesUpFirst(t *testing.T) {
	const timeout = sessionTimeout
	ctx := testenv.Context(t, 60*time.Second)
	proxy, a, la, b := leaderBehindProxy(ctx, t, timeout)
	elected := make(chan time.Time, 1)
	campaignErr := make(chan error, 1)
	go func() {
		if _, err := b.Campaign(ctx, "monitor", "mon-b"); err != nil {
			campaignErr <- err
			return
		}
		elected <- time.Now()
	}()
	heardSince(t, a, time.Time{}, timeout)

	cut := time.Now()
	proxy.Blackhole()
	var gaveUp time.Time
	select {
	case <-la.Done():
		gaveUp = time.Now()
	case <-time.After(timeout):
		t.Fatal("blackholed leader still leads after a session timeout")
	}
	var bAt time.Time
	select {
	case bAt = <-elected:
	case err := <-campaignErr:
		t.Fatal(err)
	case <-time.After(3 * timeout):
		t.Fatal("mon-b not elected after the leader's session expired")
	}
	t.Logf("MEASURED zk leader blackholed: session timeout %v; leadership given up %dms after the cut, mon-b elected %dms after it",
		timeout, gaveUp.Sub(cut).Milliseconds(), bAt.Sub(cut).Milliseconds())
	if d := gaveUp.Sub(cut); d > timeout/3+timeout/6+coordtest.Late {
		t.Errorf("leadership given up %v after the cut, want at most T/3 + T/6 = %v", d, timeout/3+timeout/6)
	}
	if !gaveUp.Before(bAt) {
		t.Errorf("two leaders: mon-b elected %v after the cut, mon-a gave up only %v after it", bAt.Sub(cut), gaveUp.Sub(cut))
	}
	proxy.Restore()
	// Until a has a session again its writes fail as unavailable; then as not the leader.
	testenv.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		err := a.SetQuarantine(ctx, coord.Quarantine{Node: "n1", Reason: "stale leader"}, la)
		if errors.Is(err, coord.ErrUnavailable) {
			return err
		}
		if !errors.Is(err, coord.ErrNotLeader) {
			t.Fatalf("fenced write by the deposed leader: err = %v, want ErrNotLeader", err)
		}
		return nil
	})
	if qs, err := b.Quarantines(ctx); err != nil || len(qs) != 0 {
		t.Fatalf("quarantines = %+v, %v; want none", qs, err)
	}
}
