package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestNodeCutOffFromZooKeeper: a node's links to all three ZooKeeper servers go silent
// (TCP proxies that stop forwarding) while its clients receive a steady stream. It answers
// /healthz 503 before the ensemble could expire its session, fences itself, and moves its
// clients off; they reconnect to the other nodes and drain their mailboxes. Nothing
// accepted is lost or reordered.
func TestNodeCutOffFromZooKeeper(t *testing.T) {
	const devices = 20
	c := newCluster(t)
	var proxies []*testenv.Proxy
	var zk []string
	for _, a := range shared.Ensemble(t).Addrs() {
		p := testenv.StartProxy(t, a)
		proxies = append(proxies, p)
		zk = append(zk, p.Addr)
	}
	cut := c.startNode("f1", "--zk", strings.Join(zk, ","))
	f2, f3 := c.startNode("f2"), c.startNode("f3")
	r := c.startRouter("r1")
	addrs := []string{cut.member.MQTTAddr, f2.member.MQTTAddr, f3.member.MQTTAddr}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	devs := make([]*device, devices)
	for i := range devs {
		devs[i] = &device{id: fmt.Sprintf("fenced-%02d", i), addrs: addrs} // all start on f1
	}
	startDevices(t, ctx, &wg, devs)

	l := newLedger()
	sendCtx, stopSending := context.WithCancel(context.Background())
	var senders sync.WaitGroup
	for _, d := range devs {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for i := 0; sendCtx.Err() == nil && i < 2000; i++ {
				l.sendOne(t, r.url, msgReq{To: d.id, Payload: fmt.Sprint(i)})
				select {
				case <-time.After(20 * time.Millisecond): // the stream's pace
				case <-sendCtx.Done():
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // let the stream run before the fault: its pace, not synchronisation

	for _, p := range proxies {
		p.Blackhole()
	}
	cutAt := time.Now()
	var unready, gone time.Duration
	var gw sync.WaitGroup
	gw.Add(1)
	go func() {
		defer gw.Done()
		c.waitMember("f1", 30*time.Second, func(_ coord.Member, ok bool) bool { return !ok })
		gone = time.Since(cutAt)
	}()
	testenv.Eventually(t, 30*time.Second, 5*time.Millisecond, func() error {
		status, h, err := health(cut.member.AdminAddr)
		if err != nil || status != 503 {
			return fmt.Errorf("healthz %d %s %v", status, h.State, err)
		}
		return nil
	})
	unready = time.Since(cutAt)
	gw.Wait()

	// Every device moves off f1.
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		n := 0
		for _, d := range devs {
			d.mu.Lock()
			if d.connects < 2 {
				n++
			}
			d.mu.Unlock()
		}
		if n > 0 {
			return fmt.Errorf("%d devices still on the fenced node", n)
		}
		return nil
	})
	moved := time.Since(cutAt)
	time.Sleep(500 * time.Millisecond) // the stream runs on where the devices are now
	stopSending()
	senders.Wait()
	l.waitDevices(t, devs, 30*time.Second)
	tl := l.report()
	t.Logf("MEASURED node cut off from ZooKeeper (session timeout %v): healthz 503 after %v, out of the live set after %v, all %d clients moved after %v; %v",
		sessionTimeout, unready.Round(time.Millisecond), gone.Round(time.Millisecond), devices, moved.Round(time.Millisecond), tl)
	if unready >= gone {
		t.Fatalf("healthz went 503 %v after the cut, not before the ensemble expired the node (%v)", unready, gone)
	}
	if tl.Lost != 0 || tl.Reordered != 0 {
		t.Fatalf("%v: %v", tl, tl.Examples)
	}
	for _, p := range proxies {
		p.Restore()
	}
	// Back in touch, it registers again and serves.
	m := c.waitMember("f1", 30*time.Second, func(m coord.Member, ok bool) bool { return ok && m.Epoch != cut.member.Epoch })
	c.waitReady(m)
}
