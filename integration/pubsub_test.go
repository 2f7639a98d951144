package integration

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// One MQTT broker across the nodes: publish/subscribe, shared subscriptions and retained
// messages, with real nodes, a real ensemble and Redis, and paho clients.

// threeRulesNodes starts three nodes whose "rules" user may read and write every topic.
func threeRulesNodes(t *testing.T, c *cluster) []*nodeProc {
	t.Helper()
	return []*nodeProc{c.rulesNode(t, "ps-1"), c.rulesNode(t, "ps-2"), c.rulesNode(t, "ps-3")}
}

// collect gathers what a client receives, by payload, until the test ends.
type collected struct {
	mu   sync.Mutex
	seen map[string][]testenv.Msg
}

func collectPayloads(cl *testenv.MQTTClient) *collected { return collectAckingLate(cl, 0) }

// collectAckingLate gathers like collectPayloads, and acknowledges each message delay
// after it came, in order, as a slow consumer does.
func collectAckingLate(cl *testenv.MQTTClient, delay time.Duration) *collected {
	c := &collected{seen: map[string][]testenv.Msg{}}
	go func() {
		for {
			select {
			case m := <-cl.Messages():
				c.mu.Lock()
				c.seen[string(m.Payload)] = append(c.seen[string(m.Payload)], m)
				c.mu.Unlock()
				if delay > 0 {
					time.Sleep(delay) // the device's processing time
				}
				if m.Ack != nil {
					_ = m.Ack()
				}
			case <-cl.Done():
				return
			}
		}
	}()
	return c
}

func (c *collected) get(payload string) []testenv.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]testenv.Msg(nil), c.seen[payload]...)
}

func (c *collected) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// A subscriber on node 1 gets what a publisher on node 3 sends, once, at the QoS of its
// subscription (downgraded, never raised), through wildcards and overlapping subscriptions;
// a subscriber on the publisher's own node gets one copy too; no-local holds.
func TestPubSubAcrossNodes(t *testing.T) {
	c := newCluster(t)
	ns := threeRulesNodes(t, c)
	sub := rulesClient(t, ns[0].member.MQTTAddr, "rules-sub1", testenv.MQTTOptions{CleanStart: true})
	got := collectPayloads(sub)
	for _, s := range []struct {
		filter string
		qos    byte
	}{{"ps/+/x", 2}, {"ps/#", 1}} { // overlapping: one copy, at the larger QoS
		if err := sub.Subscribe(s.filter, s.qos); err != nil {
			t.Fatal(err)
		}
	}
	low := rulesClient(t, ns[1].member.MQTTAddr, "rules-sub2", testenv.MQTTOptions{CleanStart: true})
	gotLow := collectPayloads(low)
	if err := low.Subscribe("ps/a/+", 0); err != nil {
		t.Fatal(err)
	}
	pub := rulesClient(t, ns[2].member.MQTTAddr, "rules-pub3", testenv.MQTTOptions{CleanStart: true})
	same := rulesClient(t, ns[2].member.MQTTAddr, "rules-same3", testenv.MQTTOptions{CleanStart: true})
	gotSame := collectPayloads(same)
	if err := same.Subscribe("ps/a/x", 2); err != nil {
		t.Fatal(err)
	}
	// no-local: the publisher subscribes to what it sends and must not get it back.
	if err := pub.SubscribeWith(paho.SubscribeOptions{Topic: "ps/#", QoS: 1, NoLocal: true}); err != nil {
		t.Fatal(err)
	}
	gotPub := collectPayloads(pub)

	for q := byte(0); q <= 2; q++ {
		if err := pub.Publish("ps/a/x", []byte(fmt.Sprintf("qos%d", q)), q); err != nil {
			t.Fatalf("publish qos %d: %v", q, err)
		}
	}
	if err := pub.Publish("ps/b/deep/y", []byte("deep"), 1); err != nil {
		t.Fatal(err)
	}
	want := map[string]byte{"qos0": 0, "qos1": 1, "qos2": 2, "deep": 1}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got.count() < len(want) || gotLow.count() < 3 || gotSame.count() < 3 {
			return fmt.Errorf("node 1 has %d, node 2 %d, node 3 %d", got.count(), gotLow.count(), gotSame.count())
		}
		return nil
	})
	// Anything that would come twice has come by the time a later message from the same
	// publisher arrives: messages of one publisher keep their order.
	if err := pub.Publish("ps/a/x", []byte("last"), 1); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, c := range []*collected{got, gotLow, gotSame} {
			if len(c.get("last")) == 0 {
				return fmt.Errorf("last not everywhere yet")
			}
		}
		return nil
	})
	for p, q := range want {
		ms := got.get(p)
		if len(ms) != 1 {
			t.Errorf("node 1 subscriber got %q %d times, want once", p, len(ms))
			continue
		}
		if ms[0].QoS != q {
			t.Errorf("node 1 subscriber got %q at QoS %d, want %d", p, ms[0].QoS, q)
		}
	}
	for _, p := range []string{"qos0", "qos1", "qos2"} {
		if ms := gotLow.get(p); len(ms) != 1 || ms[0].QoS != 0 {
			t.Errorf("node 2 QoS 0 subscriber got %q %d times (%v), want once at QoS 0", p, len(ms), ms)
		}
		if ms := gotSame.get(p); len(ms) != 1 {
			t.Errorf("same-node subscriber got %q %d times, want once", p, len(ms))
		}
	}
	if n := gotPub.count(); n != 0 {
		t.Errorf("no-local subscriber got %d of its own messages back", n)
	}
	t.Logf("cross-node: node 1 got %d distinct, node 2 %d, node 3 %d; publisher (no-local) %d", got.count(), gotLow.count(), gotSame.count(), gotPub.count())
}

// A shared group with a member on each node: every message to exactly one member; then a
// member's node is killed (kill -9) under load, and no QoS 1 message the publisher had
// acknowledged is lost.
func TestSharedSubscriptionAcrossNodes(t *testing.T) {
	c := newCluster(t)
	ns := threeRulesNodes(t, c)
	const filter = "$share/backend/devices/+/telemetry"
	var members []*collected
	for i, n := range ns {
		// The member on node 3 is a slow consumer: it acknowledges each message 5ms after
		// it came, so when its node dies it holds messages it has not acknowledged.
		slow := i == 2
		m := rulesClient(t, n.member.MQTTAddr, fmt.Sprintf("rules-member%d", i+1), testenv.MQTTOptions{CleanStart: true, ManualAck: slow})
		if slow {
			members = append(members, collectAckingLate(m, 5*time.Millisecond))
		} else {
			members = append(members, collectPayloads(m))
		}
		if err := m.Subscribe(filter, 1); err != nil {
			t.Fatal(err)
		}
	}
	pub := rulesClient(t, ns[0].member.MQTTAddr, "rules-device", testenv.MQTTOptions{CleanStart: true})
	receivedBy := func(p string) (total int, who []int) {
		for i, m := range members {
			if k := len(m.get(p)); k > 0 {
				total += k
				who = append(who, i+1)
			}
		}
		return total, who
	}

	// Phase 1: all nodes up: each message to exactly one member, and to members on every node.
	const phase1 = 300
	for i := range phase1 {
		if err := pub.Publish(fmt.Sprintf("devices/d%d/telemetry", i%7), []byte(fmt.Sprintf("a%d", i)), 1); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 15*time.Second, 20*time.Millisecond, func() error {
		for i := range phase1 {
			if total, _ := receivedBy(fmt.Sprintf("a%d", i)); total == 0 {
				return fmt.Errorf("a%d not received yet", i)
			}
		}
		return nil
	})
	perMember := make([]int, len(members))
	for i := range phase1 {
		total, who := receivedBy(fmt.Sprintf("a%d", i))
		if total != 1 {
			t.Errorf("a%d received %d times (members %v), want exactly once", i, total, who)
		}
		for _, w := range who {
			perMember[w-1]++
		}
	}
	for i, k := range perMember {
		if k == 0 {
			t.Errorf("member on node %d got none of %d messages: the group is not cluster-wide", i+1, phase1)
		}
	}
	t.Logf("phase 1: %d messages, per member %v", phase1, perMember)

	// Phase 2: kill -9 node 3 while eight devices publish.
	const phase2, devices = 2000, 8
	var (
		mu       sync.Mutex
		accepted []string
		wg       sync.WaitGroup
		sent     = make(chan int, phase2)
	)
	for i := range phase2 {
		sent <- i
	}
	close(sent)
	for d := range devices {
		dev := rulesClient(t, ns[d%2].member.MQTTAddr, fmt.Sprintf("rules-device%d", d), testenv.MQTTOptions{CleanStart: true})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range sent {
				if i == phase2/3 {
					ns[2].Kill()
				}
				p := fmt.Sprintf("b%d", i)
				if err := dev.Publish(fmt.Sprintf("devices/d%d/telemetry", d), []byte(p), 1); err != nil {
					continue // not accepted: the device would send it again
				}
				mu.Lock()
				accepted = append(accepted, p)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var lost []string
	testenv.Eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		lost = lost[:0]
		for _, p := range accepted {
			if total, _ := receivedBy(p); total == 0 {
				lost = append(lost, p)
			}
		}
		if len(lost) > 0 {
			return fmt.Errorf("%d of %d accepted messages not received by any member yet (first %v)", len(lost), len(accepted), lost[:min(5, len(lost))])
		}
		return nil
	})
	dups := 0
	for _, p := range accepted {
		if total, _ := receivedBy(p); total > 1 {
			dups += total - 1
		}
	}
	t.Logf("phase 2: sent %d, accepted %d, received %d, lost 0, duplicates %d (QoS 1 redeliveries after the kill), retried %v",
		phase2, len(accepted), len(accepted), dups, sharedMetric(t, ns[:2], "retried"))
}

// A retained message published on node 2 outlives node 2: a subscriber on node 1, and on a
// node started after node 2 died, gets it; an empty retained publish clears it everywhere.
func TestRetainedAcrossNodes(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.rulesNode(t, "ret-1"), c.rulesNode(t, "ret-2")
	p2 := rulesClient(t, n2.member.MQTTAddr, "rules-ret-pub", testenv.MQTTOptions{CleanStart: true})
	if err := p2.PublishRetained("ret/x", []byte("kept"), 1); err != nil {
		t.Fatal(err)
	}
	p2.Close()
	n2.Kill()
	n3 := c.rulesNode(t, "ret-3")
	for _, n := range []*nodeProc{n1, n3} {
		s := rulesClient(t, n.member.MQTTAddr, "rules-ret-sub-"+n.id, testenv.MQTTOptions{CleanStart: true})
		if err := s.Subscribe("ret/x", 1); err != nil {
			t.Fatal(err)
		}
		m := nextOn(t, s, "ret/x", 5*time.Second)
		if string(m.Payload) != "kept" || !m.Retain {
			t.Fatalf("%s: got %q retain=%v, want the retained message kept", n.id, m.Payload, m.Retain)
		}
		s.Close()
	}

	// Cleared on node 3: neither node has it for a new subscriber. A live message sent after
	// the SUBACK comes first then (a retained one would be sent right after the SUBACK).
	p3 := rulesClient(t, n3.member.MQTTAddr, "rules-ret-clear", testenv.MQTTOptions{CleanStart: true})
	if err := p3.PublishRetained("ret/x", nil, 1); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*nodeProc{n1, n3} {
		s := rulesClient(t, n.member.MQTTAddr, "rules-ret-after-"+n.id, testenv.MQTTOptions{CleanStart: true})
		if err := s.Subscribe("ret/x", 1); err != nil {
			t.Fatal(err)
		}
		if err := p3.Publish("ret/x", []byte("live"), 1); err != nil {
			t.Fatal(err)
		}
		if m := nextOn(t, s, "ret/x", 5*time.Second); string(m.Payload) != "live" {
			t.Fatalf("%s: after the clear, a new subscriber got %q (retain=%v) first", n.id, m.Payload, m.Retain)
		}
		s.Close()
	}
}

// Routes to a node that died are removed once it leaves the live set (the session
// timeout), and nothing is forwarded to it after that; after a partition heals, a
// subscriber on either side gets new publishes from every node.
func TestRoutesAfterNodeDeathAndPartition(t *testing.T) {
	c := newCluster(t)
	// Nodes 1 and 3 are reached through proxies (their advertised internal addresses), so
	// the link between them can be cut in both directions while ZooKeeper sees them all.
	prox := map[string]*testenv.Proxy{}
	start := func(id string) *nodeProc {
		ports, err := backends.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
		p := testenv.StartProxy(t, addr)
		prox[id] = p
		return c.rulesNode(t, id, "--internal", addr, "--advertise-internal", p.Addr)
	}
	n1, n2, n3 := start("part-1"), c.rulesNode(t, "part-2"), start("part-3")

	// Death: a subscriber on node 2, a publisher on node 1; node 2 is killed.
	s2 := rulesClient(t, n2.member.MQTTAddr, "rules-dead-sub", testenv.MQTTOptions{CleanStart: true})
	if err := s2.Subscribe("dead/#", 1); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, n1, "switchboard_node_route_peers", 15*time.Second, func(v float64) bool { return v == 2 })
	n2.Kill()
	c.waitMember("part-2", 10*time.Second, func(_ coord.Member, ok bool) bool { return !ok })
	waitMetric(t, n1, "switchboard_node_route_peers", 15*time.Second, func(v float64) bool { return v == 1 })
	p1 := rulesClient(t, n1.member.MQTTAddr, "rules-dead-pub", testenv.MQTTOptions{CleanStart: true})
	before := forwardsOut(t, n1)
	for i := range 20 {
		if err := p1.Publish("dead/x", []byte(fmt.Sprint(i)), 1); err != nil {
			t.Fatal(err)
		}
	}
	if after := forwardsOut(t, n1); after != before {
		t.Fatalf("node 1 forwarded %v publishes for a topic only the dead node subscribed to", after-before)
	}

	// Partition: cut both links between nodes 1 and 3; a client subscribes on node 3
	// meanwhile; heal; subscribers on both sides get publishes from every node.
	s1 := rulesClient(t, n1.member.MQTTAddr, "rules-part-sub1", testenv.MQTTOptions{CleanStart: true})
	if err := s1.Subscribe("part/#", 1); err != nil {
		t.Fatal(err)
	}
	prox["part-1"].Cut()
	prox["part-3"].Cut()
	s3 := rulesClient(t, n3.member.MQTTAddr, "rules-part-sub3", testenv.MQTTOptions{CleanStart: true})
	if err := s3.Subscribe("part/#", 1); err != nil {
		t.Fatal(err)
	}
	n4 := c.rulesNode(t, "part-4") // a node that joins during the partition
	prox["part-1"].Restore()
	prox["part-3"].Restore()
	g1, g3 := collectPayloads(s1), collectPayloads(s3)
	pubs := map[string]*testenv.MQTTClient{}
	for _, n := range []*nodeProc{n1, n3, n4} {
		pubs[n.id] = rulesClient(t, n.member.MQTTAddr, "rules-part-pub-"+n.id, testenv.MQTTOptions{CleanStart: true})
	}
	// Links retry with a bounded back-off: publish from every node until both subscribers
	// have a message from each (each round's payload is new, so it proves delivery after
	// the heal).
	round := 0
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		round++
		var missing []string
		for id, p := range pubs {
			payload := fmt.Sprintf("%s-%d", id, round)
			if err := p.Publish("part/"+id, []byte(payload), 1); err != nil {
				return err
			}
			for name, g := range map[string]*collected{"node 1": g1, "node 3": g3} {
				if !g.hasPrefix(id + "-") {
					missing = append(missing, name+" from "+id)
				}
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not yet: %s", strings.Join(missing, ", "))
		}
		return nil
	})
	t.Logf("after the heal, both sides got publishes from every node within %d rounds", round)
}

func (c *collected) hasPrefix(p string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.seen {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// sharedMetric sums switchboard_node_shared_total{result} over nodes.
func sharedMetric(t *testing.T, ns []*nodeProc, result string) float64 {
	t.Helper()
	total := 0.0
	for _, n := range ns {
		v, err := metric(n.member.AdminAddr, `switchboard_node_shared_total{result="`+result+`"}`)
		if err != nil {
			t.Fatal(err)
		}
		total += v
	}
	return total
}

// forwardsOut is every publish node n forwarded or tried to (sent, failed, dropped).
func forwardsOut(t *testing.T, n *nodeProc) float64 {
	t.Helper()
	total := 0.0
	for _, r := range []string{"sent", "failed", "dropped"} {
		v, err := metric(n.member.AdminAddr, `switchboard_node_forwards_total{result="`+r+`"}`)
		if err != nil {
			t.Fatal(err)
		}
		total += v
	}
	return total
}

// A device's Will, published by the node the device was connected to, reaches a subscriber
// on another node when the device drops its TCP connection without DISCONNECT: a paho
// client's, and a mosquitto_pub's killed with SIGKILL, whose Will carries every MQTT 5
// Will property, each of which the subscriber receives [MQTT-3.1.3-10].
func TestWillAcrossNodes(t *testing.T) {
	mpub := testenv.Tool(t, "mosquitto_pub")
	c := newCluster(t)
	n1, n2 := c.rulesNode(t, "will-1"), c.rulesNode(t, "will-2")
	sub := rulesClient(t, n1.member.MQTTAddr, "rules-will-sub", testenv.MQTTOptions{CleanStart: true})
	if err := sub.Subscribe("will/#", 1); err != nil {
		t.Fatal(err)
	}
	dev := rulesClient(t, n2.member.MQTTAddr, "rules-will-dev", testenv.MQTTOptions{CleanStart: true,
		Will: &paho.WillMessage{Topic: "will/rules-will-dev", Payload: []byte("gone"), QoS: 1}})
	dev.Drop()
	m := nextOn(t, sub, "will/rules-will-dev", 10*time.Second)
	if string(m.Payload) != "gone" {
		t.Fatalf("will payload %q", m.Payload)
	}

	// mosquitto_pub -l stays connected, publishing each line it reads; the first one shows
	// that it is connected and that the subscriber is reached from its node.
	host, port := splitHostPort(t, n2.member.MQTTAddr)
	cmd := exec.Command(mpub, "-h", host, "-p", port, "-V", "5", "-q", "1", "-i", "rules-will-mosq",
		"-u", "rules", "-P", rulesPassword, "-t", "will/ready", "-l",
		"--will-topic", "will/rules-will-mosq", "--will-payload", `{"gone":true}`, "--will-qos", "1",
		"-D", "will", "payload-format-indicator", "1", "-D", "will", "content-type", "application/json",
		"-D", "will", "response-topic", "will/reply", "-D", "will", "correlation-data", "corr-1",
		"-D", "will", "message-expiry-interval", "600",
		"-D", "will", "user-property", "k", "1", "-D", "will", "user-property", "k", "2")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if _, err := io.WriteString(stdin, "ready\n"); err != nil {
		t.Fatal(err)
	}
	nextOn(t, sub, "will/ready", 10*time.Second)
	_ = cmd.Process.Signal(syscall.SIGKILL) // no DISCONNECT: the Will is due
	_ = cmd.Wait()
	m = nextOn(t, sub, "will/rules-will-mosq", 10*time.Second)
	p := m.Props
	if string(m.Payload) != `{"gone":true}` || p == nil || p.PayloadFormat == nil || *p.PayloadFormat != 1 ||
		p.ContentType != "application/json" || p.ResponseTopic != "will/reply" || string(p.CorrelationData) != "corr-1" ||
		p.MessageExpiry == nil || *p.MessageExpiry == 0 || *p.MessageExpiry > 600 || fmt.Sprint(m.UserList) != "[[k 1] [k 2]]" {
		t.Fatalf("mosquitto_pub's Will arrived as %q with properties %+v, user %v (mosquitto_pub: %s)", m.Payload, p, m.UserList, stderr.String())
	}
}

// A stream of QoS 1 publishes under load, every one checked by the load generator
// (`switchboard bench pubsub`: 8 pairs, 64 publishes in flight each, subscribers up to 256
// messages behind): on one node and from node to node, nothing acknowledged is lost,
// duplicated or reordered. The generator fails the command otherwise.
func TestPubSubStreamLosesNothing(t *testing.T) {
	c := newCluster(t)
	ns := threeRulesNodes(t, c)
	addrs := []string{ns[0].member.MQTTAddr, ns[1].member.MQTTAddr, ns[2].member.MQTTAddr}
	t.Setenv("SWITCHBOARD_PASSWORD", rulesPassword)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"one node", []string{"--mqtt", addrs[0]}},
		{"across nodes", []string{"--mqtt", strings.Join(addrs, ","), "--cross-node"}},
	} {
		args := append([]string{"bench", "pubsub", "--username", "rules", "--prefix", "rules-stream", "--pairs", "8",
			"--qos", "1", "--count", "40000", "--progress", "never"}, tc.args...)
		code, out, errOut := testenv.Run(t, 2*time.Minute, args...)
		if code != 0 {
			t.Fatalf("%s: bench pubsub exit %d:\n%s\n%s", tc.name, code, out, errOut)
		}
		t.Logf("%s: %s", tc.name, strings.TrimSpace(testenv.LastLines(out, 3)))
	}
}
