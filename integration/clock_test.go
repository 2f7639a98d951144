package integration

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// TestClockSkewCannotExpireAcceptedMessages: a router whose wall clock is two hours behind
// and a node whose clock is three hours ahead (offsets injected with --clock-skew) accept
// and deliver messages with a one-hour TTL, queued and direct: none vanishes. Expiry is
// judged by the store's clock alone, from durations, so a skewed machine cannot expire an
// accepted message early. A message with a 2s TTL still expires on time.
func TestClockSkewCannotExpireAcceptedMessages(t *testing.T) {
	c := newCluster(t)
	n := c.startNode("s1", "--clock-skew", "3h")
	behind := c.startRouter("r-behind", "--clock-skew", "-2h")
	ahead := c.startRouter("r-ahead", "--clock-skew", "48h")
	l := newLedger()

	// Queued for an offline client, through both routers.
	const offline = "offline-skew"
	for i := range 5 {
		for _, r := range []*routerProc{behind, ahead} {
			if code, res := l.sendOne(t, r.url, msgReq{To: offline, Payload: fmt.Sprint(i), TTL: "1h"}); code != 200 || res.Status != router.Queued {
				t.Fatalf("queue through %s: %d %+v", r.url, code, res)
			}
		}
	}
	short := newLedger()
	if code, res := short.sendOne(t, behind.url, msgReq{To: offline, Payload: "short", TTL: "2s"}); code != 200 || res.Status != router.Queued {
		t.Fatalf("short-lived: %d %+v", code, res)
	}
	shortID := ""
	for id := range short.byID {
		shortID = id
	}
	// Direct to an online client on the skewed node.
	const online = "online-skew"
	on := inboxClient(t, n.member.MQTTAddr, online)
	stop := collect(l, on, online)
	defer stop()
	for i := range 5 {
		if code, res := l.sendOne(t, behind.url, msgReq{To: online, Payload: fmt.Sprint(i), TTL: "1h"}); code != 200 || res.Status != router.Delivered {
			t.Fatalf("direct: %d %+v", code, res)
		}
	}
	// Let the short-lived message expire, then connect the offline client.
	var mb router.MailboxView
	testenv.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		getJSON(t, behind.url+"/v1/clients/"+offline+"/mailbox?limit=100", &mb)
		for _, m := range mb.Messages {
			if m.ID == shortID {
				return fmt.Errorf("the 2s message is still in the mailbox")
			}
		}
		return nil
	})
	if mb.Depth != 10 {
		t.Fatalf("mailbox depth %d after the short one expired, want the 10 one-hour messages", mb.Depth)
	}
	cl := inboxClient(t, n.member.MQTTAddr, offline)
	stop2 := collect(l, cl, offline)
	defer stop2()
	l.waitAll(t, 10*time.Second)
	tl := l.report()
	l.mu.Lock()
	for _, id := range l.received[offline] {
		if id == shortID {
			t.Errorf("the expired message was delivered")
		}
	}
	l.mu.Unlock()
	t.Logf("MEASURED clock skew (router -2h, router +48h, node +3h): %v", tl)
	if tl.Lost != 0 || tl.Reordered != 0 {
		t.Fatalf("%v: %v", tl, tl.Examples)
	}
}

// TestConcurrentConnectsOfOneID: twenty connections with one client id reach one node at
// once. When the storm is over exactly one is connected, the presence names that one (a
// directed message is delivered to it directly, not queued), and it stays connected.
func TestConcurrentConnectsOfOneID(t *testing.T) {
	c := newCluster(t)
	n := c.startNode("cc1")
	r := c.startRouter("r1")
	const id = "clone"
	var wg sync.WaitGroup
	clients := make([]*testenv.MQTTClient, 20)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := testenv.DialMQTT(n.member.MQTTAddr, id, testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 10 * time.Second})
			if err == nil {
				if cl.Subscribe("inbox/"+id, 1) != nil {
					cl.Close()
					return
				}
				clients[i] = cl
			}
		}()
	}
	wg.Wait()
	live := func() []*testenv.MQTTClient {
		var out []*testenv.MQTTClient
		for _, cl := range clients {
			if cl == nil {
				continue
			}
			select {
			case <-cl.Done():
			default:
				out = append(out, cl)
			}
		}
		return out
	}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if k := len(live()); k != 1 {
			return fmt.Errorf("%d connections with the id still open", k)
		}
		return nil
	})
	survivor := live()[0]
	t.Cleanup(survivor.Close)
	var res router.Result
	if code := r.send(t, msgReq{To: id, Payload: "which one?"}, &res); code != 200 || res.Status != router.Delivered {
		t.Fatalf("send: %d %+v, want delivered to the connection that survived", code, res)
	}
	if m, err := survivor.Next(5 * time.Second); err != nil || m.ID != res.ID {
		t.Fatalf("survivor received %+v, %v", m, err)
	}
	select {
	case <-survivor.Done():
		t.Fatal("the surviving connection was closed")
	case <-time.After(time.Second):
	}
}
