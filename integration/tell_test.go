package integration

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// The node's lease in these tests: short, so that a sender that cannot reach a node waits
// little (the default is 2s).
var shortLease = []string{"--lease", "1s", "--lease-interval", "200ms"}

// TestQueuedMessagesArriveWhileRouterCannotReachNode: the router's link to a client's node
// is cut (a TCP proxy refusing connections) while the client stays connected there. Each
// message is answered queued once the node is sure to see it (the router stores a notice
// and waits out the node's lease), and every one arrives, in order, without any further
// traffic, before the link heals. Then the router is killed (SIGKILL) right after it
// answered queued: that message arrives too.
func TestQueuedMessagesArriveWhileRouterCannotReachNode(t *testing.T) {
	c := newCluster(t)
	n := c.startProxiedNode("q1", shortLease...)
	r := c.startRouter("r1")
	l := newLedger()
	const id = "cut-off"
	cl := inboxClient(t, n.member.MQTTAddr, id)
	stop := collect(l, cl, id)
	defer stop()

	if code, res := l.sendOne(t, r.url, msgReq{To: id, Payload: "before"}); code != 200 || res.Status != router.Delivered {
		t.Fatalf("before the cut: %d %+v", code, res)
	}
	n.internal.Cut()
	const queued = 10
	var answers []time.Duration
	for i := range queued {
		start := time.Now()
		code, res := l.sendOne(t, r.url, msgReq{To: id, Payload: fmt.Sprintf("cut %d", i)})
		if code != 200 || res.Status != router.Queued {
			t.Fatalf("message %d with the link cut: %d %+v, want queued", i, code, res)
		}
		answers = append(answers, time.Since(start))
	}
	lastAnswer := time.Now()
	took := l.waitAll(t, 10*time.Second)
	tl := l.report()
	t.Logf("MEASURED router cut off from the node: %v; answers took %v..%v; all arrived %v after the last answer, link still cut",
		tl, minDur(answers).Round(time.Millisecond), maxDur(answers).Round(time.Millisecond), time.Since(lastAnswer).Round(time.Millisecond))
	_ = took
	if tl.Lost != 0 || tl.Reordered != 0 || tl.Duplicates != 0 {
		t.Fatalf("%v: %v", tl, tl.Examples)
	}

	// A router killed right after it answered queued.
	code, res := l.sendOne(t, r.url, msgReq{To: id, Payload: "last words"})
	if code != 200 || res.Status != router.Queued {
		t.Fatalf("last message: %d %+v", code, res)
	}
	r.Kill()
	killed := time.Now()
	l.waitAll(t, 10*time.Second)
	t.Logf("MEASURED message answered queued by a router killed at once arrived %v after the kill", time.Since(killed).Round(time.Millisecond))

	// The link heals: messages go straight to the node again.
	n.internal.Restore()
	r2 := c.startRouter("r2")
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		code, res := l.sendOne(t, r2.url, msgReq{To: id, Payload: "healed"})
		if code != 200 || res.Status != router.Delivered {
			return fmt.Errorf("after healing: %d %+v", code, res)
		}
		return nil
	})
	l.waitAll(t, 10*time.Second)
	if tl := l.report(); tl.Lost != 0 || tl.Reordered != 0 {
		t.Fatalf("%v: %v", tl, tl.Examples)
	}
}

// TestTakeoverWhenOldNodeCannotBeTold: a client id is connected on node 1; the same id
// connects on node 2 while node 1 cannot be reached (its internal link is cut), so the
// takeover's kick is lost. The new session's CONNACK waits until node 1 must have seen the
// takeover notice; from then on the old session receives nothing, and it is disconnected
// well within its keepalive; the new one receives everything, in order.
func TestTakeoverWhenOldNodeCannotBeTold(t *testing.T) {
	c := newCluster(t)
	n1 := c.startProxiedNode("k1", shortLease...)
	n2 := c.startNode("k2", shortLease...)
	r := c.startRouter("r1")
	const id = "twin"
	l := newLedger()

	const keepalive = 10
	old := testenv.ConnectMQTT(t, n1.member.MQTTAddr, id, testenv.MQTTOptions{CleanStart: true, KeepAlive: keepalive})
	if err := old.Subscribe("inbox/"+id, 1); err != nil {
		t.Fatal(err)
	}
	if code, res := l.sendOne(t, r.url, msgReq{To: id, Payload: "to the old session"}); code != 200 || res.Status != router.Delivered || res.Node != "k1" {
		t.Fatalf("before the takeover: %d %+v", code, res)
	}
	if m, err := old.Next(5 * time.Second); err != nil {
		t.Fatal(err)
	} else {
		l.receive(id, m.ID)
	}

	n1.internal.Cut()
	connectAt := time.Now()
	fresh := testenv.ConnectMQTT(t, n2.member.MQTTAddr, id, testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 10 * time.Second})
	connack := time.Since(connectAt)
	taken := time.Now()
	if err := fresh.Subscribe("inbox/"+id, 1); err != nil {
		t.Fatal(err)
	}
	stop := collect(l, fresh, id)
	defer stop()
	var oldGot []string
	var mu sync.Mutex
	oldDone := make(chan struct{})
	go func() {
		defer close(oldDone)
		for {
			select {
			case m := <-old.Messages():
				mu.Lock()
				oldGot = append(oldGot, m.ID)
				mu.Unlock()
			case <-old.Done():
				return
			}
		}
	}()
	const msgs = 20
	for i := range msgs {
		if code, res := l.sendOne(t, r.url, msgReq{To: id, Payload: fmt.Sprintf("after %d", i)}); code != 200 {
			t.Fatalf("message %d after the takeover: %d %+v", i, code, res)
		}
	}
	l.waitAll(t, 20*time.Second)
	select {
	case <-oldDone:
	case <-time.After(time.Duration(keepalive) * time.Second):
		t.Fatalf("the old session is still connected %v after the takeover", time.Since(taken))
	}
	oldGone := time.Since(taken)
	mu.Lock()
	defer mu.Unlock()
	tl := l.report()
	t.Logf("MEASURED takeover with the old node unreachable: CONNACK after %v; old session disconnected %v after it (reason 0x%02x), received %d new messages; new session: %v",
		connack.Round(time.Millisecond), oldGone.Round(time.Millisecond), old.DisconnectReason(), len(oldGot), tl)
	if len(oldGot) != 0 {
		t.Fatalf("the old session received %d messages sent after the takeover: %v", len(oldGot), oldGot)
	}
	if tl.Lost != 0 || tl.Reordered != 0 {
		t.Fatalf("%v: %v", tl, tl.Examples)
	}
}

// TestTakeoverWhileOldNodeIsPaused: the same with the old node SIGSTOPped (a GC pause, a
// hung VM) while the router still routes to it. When it resumes, its lease has run out:
// it sends the old session nothing before it has read the takeover notice.
func TestTakeoverWhileOldNodeIsPaused(t *testing.T) {
	c := newCluster(t)
	n1 := c.startNode("z1", shortLease...)
	n2 := c.startNode("z2", shortLease...)
	r := c.startRouter("r1", "--max-wait", "300ms", "--answer-grace", "1s")
	const id = "sleeper"
	l := newLedger()
	old := testenv.ConnectMQTT(t, n1.member.MQTTAddr, id, testenv.MQTTOptions{CleanStart: true, KeepAlive: 10})
	if err := old.Subscribe("inbox/"+id, 1); err != nil {
		t.Fatal(err)
	}
	if code, res := l.sendOne(t, r.url, msgReq{To: id, Payload: "cached"}); code != 200 || res.Status != router.Delivered {
		t.Fatalf("before: %d %+v", code, res)
	}
	if m, err := old.Next(5 * time.Second); err != nil {
		t.Fatal(err)
	} else {
		l.receive(id, m.ID)
	}
	n1.Pause()
	fresh := testenv.ConnectMQTT(t, n2.member.MQTTAddr, id, testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 10 * time.Second})
	if err := fresh.Subscribe("inbox/"+id, 1); err != nil {
		t.Fatal(err)
	}
	stop := collect(l, fresh, id)
	defer stop()
	var oldGot int
	var mu sync.Mutex
	go func() {
		for {
			select {
			case <-old.Messages():
				mu.Lock()
				oldGot++
				mu.Unlock()
			case <-old.Done():
				return
			}
		}
	}()
	// The router still has node 1 cached: these go there first, get no answer, and are
	// queued for the new session.
	for i := range 3 {
		if code, res := l.sendOne(t, r.url, msgReq{To: id, Payload: fmt.Sprintf("while paused %d", i)}); code != 200 {
			t.Fatalf("while paused: %d %+v", code, res)
		}
	}
	n1.Resume()
	for i := range 5 {
		if code, _ := l.sendOne(t, r.url, msgReq{To: id, Payload: fmt.Sprintf("after %d", i)}); code != 200 {
			t.Fatalf("after resume: %d", code)
		}
	}
	l.waitAll(t, 20*time.Second)
	select {
	case <-old.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the old session is still connected 10s after its node resumed")
	}
	mu.Lock()
	defer mu.Unlock()
	tl := l.report()
	t.Logf("MEASURED takeover while the old node was SIGSTOPped: old session received %d new messages; new session: %v", oldGot, tl)
	if oldGot != 0 || tl.Lost != 0 || tl.Reordered != 0 {
		t.Fatalf("old session got %d; %v: %v", oldGot, tl, tl.Examples)
	}
}

func minDur(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = min(m, d)
	}
	return m
}

func maxDur(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
