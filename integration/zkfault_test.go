package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/zkstat"
)

// zkStatus runs `switchboard zk status --json` and returns its exit code and report.
func zkStatus(t *testing.T, e *backends.Ensemble) (int, zkstat.Ensemble) {
	t.Helper()
	code, out, errOut := testenv.Run(t, 30*time.Second, "zk", "status", "--zk", e.ConnectString(), "--json")
	var st zkstat.Ensemble
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("zk status --json (exit %d): %v\n%s\n%s", code, err, out, errOut)
	}
	return code, st
}

func modes(st zkstat.Ensemble) map[string]string {
	m := map[string]string{}
	for _, s := range st.Servers {
		m[s.Addr] = s.Mode
		if s.Error != "" {
			m[s.Addr] = "error: " + s.Error
		}
	}
	return m
}

// TestNodeSurvivesZKServerThenLeaderLoss stops one ZooKeeper server (a follower), brings it
// back, then stops the leader. Throughout, the node stays registered under its first epoch,
// the watcher's view stays correct, and `zk status` reports the survivors and the new
// leader. (Stopping a follower and then the leader without a restart in between would leave
// one server of three: no quorum; that case is TestQuorumLossFencesNode.)
func TestNodeSurvivesZKServerThenLeaderLoss(t *testing.T) {
	e := testenv.Ensemble(t)
	r := shared.Redis(t)
	c := newClusterOn(t, e.ConnectString(), r.Addr)
	n := c.startNode("node-z")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	leader, err := e.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var follower *backends.ZKServer
	for _, s := range e.Servers() {
		if s != leader {
			follower = s
			break
		}
	}
	if err := follower.Stop(); err != nil {
		t.Fatal(err)
	}
	code, st := zkStatus(t, e)
	if code != 0 || st.Serving != 2 || st.Leader != leader.ClientAddr {
		t.Fatalf("zk status with one follower down: exit %d, %d serving, leader %q (want %s): %v",
			code, st.Serving, st.Leader, leader.ClientAddr, modes(st))
	}
	// The watcher keeps a correct view: a node joining now is seen.
	n2 := c.startNode("node-z2")
	if err := follower.Start(); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitServing(ctx); err != nil {
		t.Fatal(err)
	}

	if err := leader.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitQuorum(ctx); err != nil {
		t.Fatal(err)
	}
	code, st = zkStatus(t, e)
	if code != 0 || st.Serving != 2 || st.Leader == "" || st.Leader == leader.ClientAddr {
		t.Fatalf("zk status after the leader stopped: exit %d, %d serving, leader %q: %v", code, st.Serving, st.Leader, modes(st))
	}
	if !strings.HasPrefix(modes(st)[leader.ClientAddr], "error: ") {
		t.Fatalf("zk status does not report the stopped leader %s as unreachable: %v", leader.ClientAddr, modes(st))
	}
	// A node leaving is seen through the new leader.
	if _, err := n2.Term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.waitMember("node-z2", 10*time.Second, func(_ coord.Member, ok bool) bool { return !ok })
	// node-z never left: same epoch, healthy.
	m := c.waitMember("node-z", time.Second, func(_ coord.Member, ok bool) bool { return ok })
	if m.Epoch != n.member.Epoch {
		t.Fatalf("node-z epoch changed from %d to %d", n.member.Epoch, m.Epoch)
	}
	// Its session's server may have been the leader it lost: Suspended for as long as it
	// takes to reach another, then Registered again under the same epoch, never fenced.
	testenv.Eventually(t, 2*sessionTimeout, 20*time.Millisecond, func() error {
		status, h, err := health(m.AdminAddr)
		if err == nil && (h.State == "fenced" || h.Epoch != n.member.Epoch) {
			t.Fatalf("node-z fenced or re-registered: %+v", h)
		}
		if err != nil || status != 200 || h.State != "registered" {
			return fmt.Errorf("node-z healthz %d %+v %v", status, h, err)
		}
		return nil
	})
}

// TestQuorumLossFencesNode stops two of three servers: `zk status` exits non-zero; the node
// fences itself a margin before its session could end (healthz 503, new connections
// refused), and no sooner than that allows; when the
// servers return it registers again with a new epoch.
func TestQuorumLossFencesNode(t *testing.T) {
	e := testenv.Ensemble(t)
	r := shared.Redis(t)
	c := newClusterOn(t, e.ConnectString(), r.Addr)
	n := c.startNode("node-f")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	servers := e.Servers()
	// The node loses its server when the first stop lands: time from before the stops, so
	// "fenced no sooner than a session timeout" is measured from no later than the loss.
	lost := time.Now()
	for _, s := range servers[:2] {
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	if code, st := zkStatus(t, e); code == 0 || st.Quorum {
		t.Fatalf("zk status with two of three down: exit %d, quorum %v: %v", code, st.Quorum, modes(st))
	}
	testenv.Eventually(t, 4*sessionTimeout, 100*time.Millisecond, func() error {
		status, h, err := health(n.member.AdminAddr)
		if err != nil {
			return err
		}
		if status != 503 || h.State != "fenced" {
			return fmt.Errorf("healthz %d state %s", status, h.State)
		}
		return nil
	})
	fencedAfter := time.Since(lost)
	t.Logf("MEASURED: quorum lost → node fenced after %v (session timeout %v)", fencedAfter.Round(time.Millisecond), sessionTimeout)
	// The node fences FenceAfter(T) after the send of its last answered probe (a margin
	// before the ensemble could end the session), and that probe went out at most a probe
	// interval before the servers stopped: sooner than that would be a fence without cause.
	if early := coord.FenceAfter(sessionTimeout) - coord.ProbeInterval(sessionTimeout); fencedAfter < early {
		t.Fatalf("fenced after %v, before %v (%v after its last answered probe, which can be at most %v before the loss)",
			fencedAfter, early, coord.FenceAfter(sessionTimeout), coord.ProbeInterval(sessionTimeout))
	}
	if cl, err := testenv.DialMQTT(n.member.MQTTAddr, "while-fenced", testenv.MQTTOptions{CleanStart: true}); err == nil {
		cl.Close()
		t.Fatal("a fenced node accepted a new MQTT connection")
	} else if cl == nil || cl.Connack == nil || cl.Connack.ReasonCode != 0x88 {
		t.Fatalf("fenced node refused without CONNACK 0x88: %v", err)
	}

	for _, s := range servers[:2] {
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.WaitQuorum(ctx); err != nil {
		t.Fatal(err)
	}
	m := c.waitMember("node-f", 30*time.Second, func(m coord.Member, ok bool) bool { return ok && m.Epoch != n.member.Epoch })
	t.Logf("re-registered: epoch %#x → %#x", n.member.Epoch, m.Epoch)
	testenv.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		status, h, err := health(m.AdminAddr)
		if err != nil || status != 200 || h.Epoch != m.Epoch {
			return fmt.Errorf("healthz %d %+v %v", status, h, err)
		}
		return nil
	})
	testenv.ConnectMQTT(t, m.MQTTAddr, "after-fence", testenv.MQTTOptions{CleanStart: true})
}

// TestSessionExpiryWhileNodeStaysUp freezes a node (SIGSTOP) for longer than its session
// timeout, so the ensemble expires its session while the process lives on; after SIGCONT it
// registers again with a new epoch.
func TestSessionExpiryWhileNodeStaysUp(t *testing.T) {
	c := newCluster(t)
	n := c.startNode("node-s")
	n.Pause()
	c.waitMember("node-s", 4*sessionTimeout, func(_ coord.Member, ok bool) bool { return !ok })
	n.Resume()
	m := c.waitMember("node-s", 30*time.Second, func(m coord.Member, ok bool) bool { return ok })
	if m.Epoch == n.member.Epoch {
		t.Fatalf("re-registered under the old epoch %d", m.Epoch)
	}
	if m.Instance != n.member.Instance {
		t.Fatalf("a different process registered (instance %s, want %s)", m.Instance, n.member.Instance)
	}
	testenv.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		status, h, err := health(m.AdminAddr)
		if err != nil || status != 200 || h.Epoch != m.Epoch {
			return fmt.Errorf("healthz %d %+v %v", status, h, err)
		}
		return nil
	})
}
