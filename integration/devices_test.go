package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// publisher keeps a client publishing QoS 1 messages on its own connection (to its probe
// topic, which every client may use) from several goroutines until stop, as a device sends
// telemetry while it receives. paho.golang numbers these publishes from 1 with its default
// settings, the same numbers the node uses for the messages it sends: the two must never
// be confused.
func publisher(t *testing.T, cl *testenv.MQTTClient, id string) (stop func() int) {
	const parallel = 8
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for g := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 20_000; i++ {
				if err := cl.Publish("$switchboard/probe/"+id, []byte(fmt.Sprintf("telemetry %d/%d", g, i)), 1); err != nil {
					return // the connection ended
				}
				mu.Lock()
				n++
				mu.Unlock()
			}
		}()
	}
	return func() int { cancel(); wg.Wait(); return n }
}

// collect records everything cl receives in the ledger until the returned stop is called.
func collect(l *ledger, cl *testenv.MQTTClient, id string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case m := <-cl.Messages():
				l.receive(id, m.ID)
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// TestDevicesPublishingWhileReceiving: a paho.golang client with default settings
// publishes QoS 1 telemetry from several goroutines while it receives directed messages.
// Its publishes use the packet ids the node's messages use; none may be taken for an
// acknowledgement:
//
//   - while it acknowledges nothing, no message is answered delivered (each is queued
//     after the max wait), and when it drops its connection and comes back, every one
//     arrives;
//   - a mailbox drained while it publishes arrives whole and in order.
func TestDevicesPublishingWhileReceiving(t *testing.T) {
	const unacked, drained = 20, 300
	c := newCluster(t)
	n := c.startNode("p1")
	r := c.startRouter("r1")
	l := newLedger()
	const id = "busy-paho"

	cl, err := testenv.DialMQTT(n.member.MQTTAddr, id, testenv.MQTTOptions{CleanStart: true, ManualAck: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Subscribe("inbox/"+id, 1); err != nil {
		t.Fatal(err)
	}
	stopPub := publisher(t, cl, id)
	got := map[string]bool{}
	for i := range unacked {
		code, res := l.sendOne(t, r.url, msgReq{To: id, Payload: fmt.Sprintf("unacked %d", i), MaxWait: "300ms"})
		if code != 200 {
			t.Fatalf("message %d: status %d", i, code)
		}
		if res.Status == router.Delivered {
			t.Fatalf("message %d answered delivered, but the client acknowledged nothing: "+
				"one of its own publishes was taken for the acknowledgement", i)
		}
	}
	// It received them (unacknowledged) on this connection.
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		for {
			select {
			case m := <-cl.Messages():
				got[m.ID] = true
				continue
			default:
			}
			break
		}
		if len(got) < unacked {
			return fmt.Errorf("received %d of %d", len(got), unacked)
		}
		return nil
	})
	published := stopPub()
	// It loses its network and comes back acknowledging, publishing again.
	cl.Drop()
	cl2 := testenv.ConnectMQTT(t, n.member.MQTTAddr, id, testenv.MQTTOptions{CleanStart: true})
	stopCollect := collect(l, cl2, id)
	stopPub = publisher(t, cl2, id)
	if err := cl2.Subscribe("inbox/"+id, 1); err != nil {
		t.Fatal(err)
	}
	l.waitAll(t, 30*time.Second)
	published += stopPub()
	stopCollect()
	first := l.report()
	t.Logf("MEASURED paho.golang publishing, acknowledging nothing, then reconnecting: %v", first)

	// Offline: the next messages queue; on reconnect the client drains its mailbox while
	// it publishes from several goroutines.
	cl2.Close()
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		var cs router.Client
		getJSON(t, r.url+"/v1/clients/"+id, &cs)
		if cs.Online {
			return fmt.Errorf("%s still online", id)
		}
		return nil
	})
	for i := range drained {
		if code, res := l.sendOne(t, r.url, msgReq{To: id, Payload: fmt.Sprintf("queued %d", i)}); code != 200 || res.Status != router.Queued {
			t.Fatalf("queued %d: %d %+v", i, code, res)
		}
	}
	cl3 := testenv.ConnectMQTT(t, n.member.MQTTAddr, id, testenv.MQTTOptions{CleanStart: true})
	stopCollect = collect(l, cl3, id)
	stopPub = publisher(t, cl3, id)
	if err := cl3.Subscribe("inbox/"+id, 1); err != nil {
		t.Fatal(err)
	}
	took := l.waitAll(t, 30*time.Second)
	published += stopPub()
	stopCollect()
	tl := l.report()
	t.Logf("MEASURED paho.golang publishing while receiving: %v; the client published %d QoS 1 messages meanwhile; mailbox of %d drained in %v",
		tl, published, drained, took.Round(time.Millisecond))
	if tl.Lost != 0 || tl.Reordered != 0 || tl.Accepted != unacked+drained {
		t.Fatalf("%v: %v", tl, tl.Examples)
	}
	if published < drained {
		t.Fatalf("the client published only %d messages: the test did not exercise the collision", published)
	}
	// The node removes a mailbox copy after the client's PUBACK (and after its receipt,
	// if it has one), asynchronously: the mailbox empties shortly after the last
	// acknowledgement, not with it, and no event announces it.
	arrived, firstDepth := time.Now(), -1
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		var mb router.MailboxView
		getJSON(t, r.url+"/v1/clients/"+id+"/mailbox", &mb)
		if firstDepth < 0 {
			firstDepth = mb.Depth
		}
		if mb.Depth != 0 {
			return fmt.Errorf("mailbox depth %d after everything was acknowledged", mb.Depth)
		}
		return nil
	})
	t.Logf("MEASURED mailbox depth %d when the last message arrived, empty %v later",
		firstDepth, time.Since(arrived).Round(time.Millisecond))
}

// jsDevice is an MQTT.js client (integration/js/device.js) run by Node.js.
type jsDevice struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan map[string]any
	done   chan struct{}
}

// startJSDevice runs device.js; the npm packages must be installed (scripts/test.sh runs
// `npm ci` in integration/js).
func startJSDevice(t *testing.T, url, id, pubTopic string, publishes int) *jsDevice {
	t.Helper()
	dir := filepath.Join(testenv.ModuleRoot(t), "integration", "js")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "mqtt")); err != nil {
		t.Fatalf("MQTT.js is not installed (run: npm ci --prefix integration/js): %v", err)
	}
	cmd := exec.Command("node", "device.js", url, id, pubTopic, fmt.Sprint(publishes))
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node device.js: %v", err)
	}
	d := &jsDevice{cmd: cmd, stdin: stdin, events: make(chan map[string]any, 1<<16), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				d.events <- ev
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
	})
	return d
}

// waitEvent waits for an event named name, passing every other event to other.
func (d *jsDevice) waitEvent(t *testing.T, name string, within time.Duration, other func(map[string]any)) map[string]any {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-d.events:
			if ev["event"] == name {
				return ev
			}
			if ev["event"] == "error" {
				t.Fatalf("MQTT.js device: %v", ev["error"])
			}
			if other != nil {
				other(ev)
			}
		case <-d.done:
			t.Fatalf("MQTT.js device exited before %q", name)
		case <-deadline:
			t.Fatalf("MQTT.js device: no %q within %v", name, within)
		}
	}
}

// TestMQTTJSDevicePublishingWhileReceiving: the same for MQTT.js (MQTT 5), which numbers its
// publishes the same way: every accepted message arrives, in order, while it publishes.
func TestMQTTJSDevicePublishingWhileReceiving(t *testing.T) {
	const total = 300
	c := newCluster(t)
	n := c.startNode("j1")
	r := c.startRouter("r1")
	l := newLedger()
	const id = "busy-js"

	// Half queued before it connects (drained on connect), half sent while it is online.
	for i := range total / 2 {
		if code, _ := l.sendOne(t, r.url, msgReq{To: id, Payload: fmt.Sprintf("queued %d", i)}); code != 200 {
			t.Fatalf("queued %d: %d", i, code)
		}
	}
	d := startJSDevice(t, "mqtt://"+n.member.MQTTAddr, id, "$switchboard/probe/"+id, 5000)
	record := func(ev map[string]any) {
		if ev["event"] == "message" {
			l.receive(id, fmt.Sprint(ev["id"]))
		}
	}
	d.waitEvent(t, "connected", 20*time.Second, record)
	for i := range total / 2 {
		if code, _ := l.sendOne(t, r.url, msgReq{To: id, Payload: fmt.Sprintf("direct %d", i)}); code != 200 {
			t.Fatalf("direct %d: %d", i, code)
		}
	}
	var published float64
	deadline := time.After(60 * time.Second)
	for l.missing() > 0 {
		select {
		case ev := <-d.events:
			record(ev)
			if ev["event"] == "published" {
				published, _ = ev["n"].(float64)
			}
			if ev["event"] == "error" {
				t.Fatalf("MQTT.js device: %v", ev["error"])
			}
		case <-deadline:
			t.Fatalf("not everything arrived: %v", l.report())
		}
	}
	tl := l.report()
	t.Logf("MEASURED MQTT.js publishing while receiving: %v; it had published %v QoS 1 messages", tl, published)
	if tl.Lost != 0 || tl.Reordered != 0 {
		t.Fatalf("%v: %v", tl, tl.Examples)
	}
}

// TestSilentAndSlowAckers: a client that never acknowledges holds at most the node's window
// of messages, each received once on its connection, and the rest waits in its mailbox
// (answered queued after the max wait); a message that expires meanwhile is never
// delivered. When it comes back acknowledging, it gets everything else. A client that
// acknowledges slowly gets each message exactly once, and once it has acknowledged
// everything its mailbox is empty: the copies queued after the max wait were removed.
func TestSilentAndSlowAckers(t *testing.T) {
	const window = 8
	c := newCluster(t)
	n := c.startNode("a1", "--window", fmt.Sprint(window), "--max-wait", "300ms")
	r := c.startRouter("r1")

	// The silent one.
	const silent = "silent"
	l := newLedger()
	cl, err := testenv.DialMQTT(n.member.MQTTAddr, silent, testenv.MQTTOptions{CleanStart: true, ManualAck: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Subscribe("inbox/"+silent, 1); err != nil {
		t.Fatal(err)
	}
	batch := struct {
		Messages []msgReq `json:"messages"`
	}{}
	for i := range 30 {
		batch.Messages = append(batch.Messages, msgReq{To: silent, Payload: fmt.Sprintf("m%02d", i)})
	}
	for i := range 5 {
		batch.Messages = append(batch.Messages, msgReq{To: silent, Payload: fmt.Sprintf("short-lived %d", i), TTL: "2s"})
	}
	var out struct {
		Results []router.BatchItem `json:"results"`
	}
	at := l.submit()
	if code := postJSON(t, r.url+"/v1/messages/batch", batch, &out); code != 200 {
		t.Fatalf("batch: %d %+v", code, out)
	}
	shortLived := map[string]bool{}
	for i, it := range out.Results {
		if it.Status != router.Queued {
			t.Fatalf("message %d to a client that does not acknowledge: %+v, want queued after the max wait", i, it)
		}
		l.accept(silent, it.ID, at, it.Status)
		if i >= 30 {
			shortLived[it.ID] = true
		}
	}
	// Over the short-lived messages' lifetime and more, it holds exactly the window.
	seen := map[string]int{}
	watch := time.After(3 * time.Second)
	for done := false; !done; {
		select {
		case m := <-cl.Messages():
			seen[m.ID]++
		case <-watch:
			done = true
		}
	}
	copies := 0
	for id, k := range seen {
		copies += k
		if k > 1 {
			t.Fatalf("%s was sent %d times on one connection", id, k)
		}
	}
	t.Logf("MEASURED silent client: held %d messages (window %d), %d copies, over 3s", len(seen), window, copies)
	if len(seen) != window {
		t.Fatalf("the silent client received %d messages, want exactly the window of %d", len(seen), window)
	}
	// It drops its connection without DISCONNECT and comes back acknowledging.
	cl.Drop()
	cl2 := inboxClient(t, n.member.MQTTAddr, silent)
	stop := collect(l, cl2, silent)
	// The short-lived ones expired meanwhile: all the others arrive, those never.
	for id := range shortLived {
		l.mu.Lock()
		l.byID[id].status = router.Expired // expected never to arrive
		l.mu.Unlock()
	}
	l.waitAll(t, 20*time.Second)
	stop()
	l.mu.Lock()
	for _, id := range l.received[silent] {
		if shortLived[id] {
			l.mu.Unlock()
			t.Fatalf("expired message %s was delivered", id)
		}
	}
	l.mu.Unlock()
	tl := l.report()
	t.Logf("MEASURED silent client after it came back: %v", tl)
	if tl.Reordered != 0 {
		t.Fatalf("%v: %v", tl, tl.Examples)
	}

	// The slow one acknowledges each message a second after it arrives.
	const slow = "slowpoke"
	sl := newLedger()
	scl, err := testenv.DialMQTT(n.member.MQTTAddr, slow, testenv.MQTTOptions{CleanStart: true, ManualAck: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(scl.Close)
	if err := scl.Subscribe("inbox/"+slow, 1); err != nil {
		t.Fatal(err)
	}
	batch.Messages = nil
	for i := range 20 {
		batch.Messages = append(batch.Messages, msgReq{To: slow, Payload: fmt.Sprintf("s%02d", i)})
	}
	at = sl.submit()
	out.Results = nil
	if code := postJSON(t, r.url+"/v1/messages/batch", batch, &out); code != 200 {
		t.Fatalf("batch: %d", code)
	}
	for _, it := range out.Results {
		sl.accept(slow, it.ID, at, it.Status)
	}
	var acks sync.WaitGroup
	deadline := time.After(60 * time.Second)
	for sl.missing() > 0 {
		select {
		case m := <-scl.Messages():
			sl.receive(slow, m.ID)
			acks.Add(1)
			time.AfterFunc(time.Second, func() { defer acks.Done(); _ = m.Ack() })
		case <-deadline:
			t.Fatalf("slow client: %v", sl.report())
		}
	}
	acks.Wait()
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		var mb router.MailboxView
		getJSON(t, r.url+"/v1/clients/"+slow+"/mailbox", &mb)
		if mb.Depth != 0 {
			return fmt.Errorf("mailbox depth %d after every message was acknowledged", mb.Depth)
		}
		return nil
	})
	stl := sl.report()
	t.Logf("MEASURED slow client (acks after 1s, max wait 300ms): %v", stl)
	if stl.Lost != 0 || stl.Duplicates != 0 || stl.Reordered != 0 {
		t.Fatalf("slow client: %v: %v", stl, stl.Examples)
	}
}

// TestPubSubAndDirectedOnOneConnection: a client subscribed to its own probe topic gets its
// own QoS 1 publishes back through the broker's ordinary publish/subscribe (mochi numbers
// those) while it receives directed messages (the node numbers those) and publishes from
// several goroutines: the node renumbers mochi's packets on the wire, so every message of
// both kinds arrives and is acknowledged.
func TestPubSubAndDirectedOnOneConnection(t *testing.T) {
	const directed = 300
	c := newCluster(t)
	n := c.startNode("ps1")
	r := c.startRouter("r1")
	l := newLedger()
	const id = "both"
	cl := inboxClient(t, n.member.MQTTAddr, id)
	probe := "$switchboard/probe/" + id
	if err := cl.Subscribe(probe, 1); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	echoes := map[string]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-cl.Messages():
				if m.Topic == probe {
					mu.Lock()
					echoes[string(m.Payload)] = true
					mu.Unlock()
					continue
				}
				l.receive(id, m.ID)
			case <-cl.Done():
				return
			}
		}
	}()
	stopPub := publisher(t, cl, id)
	for i := range directed {
		if code, _ := l.sendOne(t, r.url, msgReq{To: id, Payload: fmt.Sprint(i)}); code != 200 {
			t.Fatalf("directed %d: %d", i, code)
		}
	}
	published := stopPub()
	l.waitAll(t, 30*time.Second)
	testenv.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(echoes) < published {
			return fmt.Errorf("%d of %d published messages came back through the broker", len(echoes), published)
		}
		return nil
	})
	tl := l.report()
	t.Logf("MEASURED directed %v; pub/sub on the same connection: %d published, %d came back", tl, published, len(echoes))
	if tl.Lost != 0 || tl.Reordered != 0 || tl.Duplicates != 0 {
		t.Fatalf("%v: %v", tl, tl.Examples)
	}
}
