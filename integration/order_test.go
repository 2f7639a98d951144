package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// routers is the set of routers senders may use; the test replaces a killed one.
type routers struct {
	mu   sync.Mutex
	urls []string
}

func (rs *routers) pick(k int) string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.urls[k%len(rs.urls)]
}

func (rs *routers) replace(old, new string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for i, u := range rs.urls {
		if u == old {
			rs.urls[i] = new
		}
	}
}

// sendRetrying sends req (with its own id) through router k, k+1, ... until one accepts
// it, as a careful backend does: the same id, so a retry of a message that was stored
// after all is recognised. The submission time is the first attempt's.
func (l *ledger) sendRetrying(ctx context.Context, rs *routers, k int, req msgReq) bool {
	b, _ := json.Marshal(req)
	at := l.submit()
	client := &http.Client{Timeout: 30 * time.Second}
	for attempt := 0; attempt < 200 && ctx.Err() == nil; attempt++ {
		url := rs.pick(k + attempt)
		resp, err := client.Post(url+"/v1/messages", "application/json", bytes.NewReader(b))
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				var res router.Result
				if json.Unmarshal(raw, &res) == nil {
					l.accept(req.To, res.ID, at, res.Status)
					return true
				}
			}
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	l.refuse()
	return false
}

// TestOrderAcrossRouters: three routers, three nodes, 30 devices; each device's messages
// are sent one after another, alternating between the routers, while a node is killed
// (SIGKILL), a router is killed (and another started), some devices acknowledge slowly and
// some hop to another node (a takeover) mid-stream. No accepted message is lost, and none
// arrives before a message that was accepted before it was submitted.
func TestOrderAcrossRouters(t *testing.T) {
	const (
		devices = 30
		perDev  = 60
	)
	c := newCluster(t)
	nodes := []*nodeProc{c.startNode("o1"), c.startNode("o2"), c.startNode("o3")}
	rps := []*routerProc{c.startRouter("ra", "--max-wait", "300ms"), c.startRouter("rb", "--max-wait", "300ms"), c.startRouter("rc", "--max-wait", "300ms")}
	rs := &routers{urls: []string{rps[0].url, rps[1].url, rps[2].url}}
	addrs := []string{nodes[0].member.MQTTAddr, nodes[1].member.MQTTAddr, nodes[2].member.MQTTAddr}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	devs := make([]*device, devices)
	for i := range devs {
		devs[i] = &device{id: fmt.Sprintf("ord-%02d", i), addrs: addrs, next: i % 3}
		if i%5 == 0 {
			devs[i].ackDelay = 500 * time.Millisecond // slower than the max wait
		}
	}
	startDevices(t, ctx, &wg, devs)

	l := newLedger()
	var sent sync.Map // device -> messages sent so far
	var senders sync.WaitGroup
	for i, d := range devs {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for k := range perDev {
				l.sendRetrying(ctx, rs, i+k, msgReq{To: d.id, ID: fmt.Sprintf("%s-%03d", d.id, k), Payload: fmt.Sprint(k)})
				sent.Store(d.id, k+1)
			}
		}()
	}
	// waitSent waits until every device has had at least n messages accepted or refused.
	waitSent := func(n int) {
		testenv.Eventually(t, 120*time.Second, 20*time.Millisecond, func() error {
			for _, d := range devs {
				v, _ := sent.Load(d.id)
				if k, _ := v.(int); k < n {
					return fmt.Errorf("%s has sent %d of %d", d.id, k, n)
				}
			}
			return nil
		})
	}
	waitSent(perDev / 4)
	nodes[1].Kill()
	t.Logf("killed node o2 (SIGKILL)")
	waitSent(perDev / 2)
	rps[1].Kill()
	r4 := c.startRouter("rd", "--max-wait", "300ms")
	rs.replace(rps[1].url, r4.url)
	t.Logf("killed router rb (SIGKILL), started rd")
	waitSent(perDev * 3 / 4)
	for i, d := range devs {
		if i%3 == 1 {
			d.hop()
		}
	}
	t.Logf("a third of the devices hopped to another node")
	senders.Wait()

	l.waitDevices(t, devs, 60*time.Second)
	tl := l.report()
	t.Logf("MEASURED order across 3 routers (node kill, router kill, slow acks, takeovers): %v", tl)
	if tl.Lost != 0 || tl.Reordered != 0 || tl.Refused != 0 {
		t.Fatalf("%v: %v", tl, tl.Examples)
	}
}
