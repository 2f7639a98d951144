package integration

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// device is a test MQTT client that stays connected: when its node goes away it reconnects
// to the next node in the list, subscribes to its inbox again and keeps receiving.
type device struct {
	id    string
	addrs []string
	next  int
	// ackDelay, if set, makes the device acknowledge each message this long after it
	// arrives, as a slow device does.
	ackDelay time.Duration
	// onMessage, if set, is given each message instead (the device acknowledges manually
	// and onMessage decides when, or never).
	onMessage func(testenv.Msg)

	mu          sync.Mutex
	received    []string // message ids, in arrival order
	reconnected time.Time
	connects    int
	cur         *testenv.MQTTClient
}

// hop drops the device's connection (without DISCONNECT); it reconnects to the next node,
// which takes the session over.
func (d *device) hop() {
	d.mu.Lock()
	cur := d.cur
	d.mu.Unlock()
	if cur != nil {
		cur.Drop()
	}
}

func (d *device) run(ctx context.Context, ready chan<- struct{}) {
	first := true
	for ctx.Err() == nil {
		addr := d.addrs[d.next%len(d.addrs)]
		cl, err := testenv.DialMQTT(addr, d.id, testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 5 * time.Second,
			ManualAck: d.ackDelay > 0 || d.onMessage != nil})
		if err == nil {
			err = cl.Subscribe("inbox/"+d.id, 1)
			if err != nil {
				cl.Close()
			}
		}
		if err != nil {
			d.next++
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return
			}
			continue
		}
		d.mu.Lock()
		d.connects++
		d.cur = cl
		if !first {
			d.reconnected = time.Now()
		}
		d.mu.Unlock()
		if first {
			ready <- struct{}{}
			first = false
		}
		d.receive(ctx, cl)
		cl.Close()
		d.next++
	}
}

// receive records messages until the connection ends (or ctx does).
func (d *device) receive(ctx context.Context, cl *testenv.MQTTClient) {
	for {
		select {
		case m := <-cl.Messages():
			d.record(m)
		case <-cl.Done():
			for {
				select {
				case m := <-cl.Messages():
					d.record(m)
				default:
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// startDevices starts the devices, each reconnecting until ctx ends (wg tracks them), and
// waits until every one has connected once.
func startDevices(t *testing.T, ctx context.Context, wg *sync.WaitGroup, devs []*device) {
	t.Helper()
	ready := make(chan struct{}, len(devs))
	for _, d := range devs {
		wg.Add(1)
		go func() { defer wg.Done(); d.run(ctx, ready) }()
	}
	for range devs {
		select {
		case <-ready:
		case <-time.After(60 * time.Second):
			t.Fatal("devices did not all connect")
		}
	}
}

// fromDevices replaces the ledger's receipts with what the devices have received so far.
func (l *ledger) fromDevices(devs []*device) {
	l.mu.Lock()
	l.received = map[string][]string{}
	l.mu.Unlock()
	for _, d := range devs {
		d.mu.Lock()
		ids := append([]string(nil), d.received...)
		d.mu.Unlock()
		for _, id := range ids {
			l.receive(d.id, id)
		}
	}
}

// waitDevices waits until the devices have received every message the ledger accepted.
func (l *ledger) waitDevices(t *testing.T, devs []*device, d time.Duration) {
	t.Helper()
	testenv.Eventually(t, d, 50*time.Millisecond, func() error {
		l.fromDevices(devs)
		if tl := l.report(); tl.Lost > 0 {
			return fmt.Errorf("%v: %v", tl, tl.Examples)
		}
		return nil
	})
}

func (d *device) record(m testenv.Msg) {
	d.mu.Lock()
	d.received = append(d.received, m.ID)
	d.mu.Unlock()
	switch {
	case d.onMessage != nil:
		d.onMessage(m)
	case d.ackDelay > 0:
		time.AfterFunc(d.ackDelay, func() { _ = m.Ack() })
	}
}

// TestNoLossWhenANodeIsKilled is the loss test: 3 nodes, 300 clients spread over them, a
// steady stream of QoS 1 messages through the router; one node is killed with SIGKILL
// mid-stream and its clients reconnect to the survivors. Every message the router accepted
// is received, and each client receives its messages in the order they were accepted.
func TestNoLossWhenANodeIsKilled(t *testing.T) {
	const (
		clients = 300
		rounds  = 20
		killAt  = 6
		gap     = 50 * time.Millisecond
	)
	c := newCluster(t)
	nodes := []*nodeProc{c.startNode("l1"), c.startNode("l2"), c.startNode("l3")}
	r := c.startRouter("r1")
	addrs := []string{nodes[0].member.MQTTAddr, nodes[1].member.MQTTAddr, nodes[2].member.MQTTAddr}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	devices := make([]*device, clients)
	for i := range devices {
		devices[i] = &device{id: fmt.Sprintf("dev-%03d", i), addrs: addrs, next: i % 3}
	}
	startDevices(t, ctx, &wg, devices)

	accepted := make([][]string, clients)
	var statuses = map[router.Outcome]int{}
	var killTime time.Time
	refused := 0
	for round := range rounds {
		if round == killAt {
			killTime = time.Now()
			nodes[0].Kill()
			t.Logf("killed %s (SIGKILL) after round %d", nodes[0].id, round)
		}
		batch := struct {
			Messages []msgReq `json:"messages"`
		}{}
		for i, d := range devices {
			batch.Messages = append(batch.Messages, msgReq{To: d.id, Payload: fmt.Sprintf("%d/%d", i, round)})
		}
		var out struct {
			Results []router.BatchItem `json:"results"`
		}
		code := postJSON(t, r.url+"/v1/messages/batch", batch, &out)
		if code != http.StatusOK && code != http.StatusMultiStatus {
			t.Fatalf("round %d: batch answered %d", round, code)
		}
		for i, item := range out.Results {
			if item.Code != http.StatusOK {
				refused++ // not accepted: no promise made
				continue
			}
			accepted[i] = append(accepted[i], item.ID)
			statuses[item.Status]++
		}
		time.Sleep(gap) // the stream's pace, not synchronisation
	}
	sentDone := time.Now()

	total := 0
	for _, a := range accepted {
		total += len(a)
	}
	// Wait until every accepted message has arrived at its client.
	missing := func() (int, string) {
		n, example := 0, ""
		for i, d := range devices {
			d.mu.Lock()
			seen := map[string]bool{}
			for _, id := range d.received {
				seen[id] = true
			}
			for _, id := range accepted[i] {
				if !seen[id] {
					n++
					if example == "" {
						example = fmt.Sprintf("%s missing %s", d.id, id)
					}
				}
			}
			d.mu.Unlock()
		}
		return n, example
	}
	testenv.Eventually(t, 60*time.Second, 100*time.Millisecond, func() error {
		if n, ex := missing(); n > 0 {
			return fmt.Errorf("%d accepted messages not received yet (e.g. %s)", n, ex)
		}
		return nil
	})
	allReceived := time.Now()

	// Order: the first arrival of each message follows acceptance order; anything else is a
	// duplicate of a message already received.
	received, duplicates, movedClients := 0, 0, 0
	var lastReconnect time.Time
	for i, d := range devices {
		d.mu.Lock()
		received += len(d.received)
		seen := map[string]bool{}
		var firsts []string
		for _, id := range d.received {
			if seen[id] {
				duplicates++
				continue
			}
			seen[id] = true
			firsts = append(firsts, id)
		}
		if len(firsts) != len(accepted[i]) {
			t.Errorf("%s received %d distinct messages, %d accepted (extra ones never accepted?)", d.id, len(firsts), len(accepted[i]))
		}
		for k := range min(len(firsts), len(accepted[i])) {
			if firsts[k] != accepted[i][k] {
				t.Errorf("%s: message %d out of order: got %s, want %s", d.id, k, firsts[k], accepted[i][k])
				break
			}
		}
		if d.connects > 1 {
			movedClients++
			if d.reconnected.After(lastReconnect) {
				lastReconnect = d.reconnected
			}
		}
		d.mu.Unlock()
	}
	if movedClients == 0 {
		t.Fatal("no client reconnected: the kill did not happen where the test thinks")
	}
	t.Logf("MEASURED loss test: %d clients, %d rounds, node killed at round %d", clients, rounds, killAt)
	t.Logf("MEASURED accepted %d (delivered %d, queued %d), refused %d, received %d, distinct %d, duplicates %d",
		total, statuses[router.Delivered], statuses[router.Queued], refused, received, received-duplicates, duplicates)
	t.Logf("MEASURED %d clients moved; last reconnected %v after the kill; all messages received %v after the last send (%v after the kill)",
		movedClients, lastReconnect.Sub(killTime).Round(time.Millisecond), allReceived.Sub(sentDone).Round(time.Millisecond),
		allReceived.Sub(killTime).Round(time.Millisecond))
}
