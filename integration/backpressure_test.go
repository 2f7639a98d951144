package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/healthz"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// TestBackpressureWhenRedisFreezes freezes Redis (SIGSTOP) under a steady load of sends to
// offline clients through a router. The router answers 503 with Retry-After: the first
// ones within its store timeout, then at once (the store stops sending calls to a Redis
// that does not answer), and its goroutines stay bounded however many requests come. The
// node still delivers to a connected client directly while its delivery lease holds, and
// its /healthz says store: degraded. When Redis resumes, sends are accepted again.
func TestBackpressureWhenRedisFreezes(t *testing.T) {
	r := testenv.Redis(t)
	c := newClusterOn(t, shared.Ensemble(t).ConnectString(), r.Addr)
	// A long lease, so that the node goes on delivering for a while after Redis froze.
	n := c.startNode("bp1", "--lease", "8s")
	rt := c.startRouter("bpr")

	online, err := testenv.DialMQTT(n.member.MQTTAddr, "bp-online", testenv.MQTTOptions{CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer online.Close()
	if err := online.Subscribe("inbox/bp-online", 1); err != nil {
		t.Fatal(err)
	}
	// The router learns the online client's route (its cache) while Redis answers.
	var res router.Result
	if code := rt.send(t, msgReq{To: "bp-online", Payload: "before"}, &res); code != 200 || res.Status != router.Delivered {
		t.Fatalf("send before the freeze: %d %+v", code, res)
	}
	<-online.Messages()
	metricsAddr := strings.TrimPrefix(rt.url, "http://")
	base, err := metric(metricsAddr, "go_goroutines")
	if err != nil {
		t.Fatal(err)
	}

	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			r.Resume()
		}
	}()

	// The node still delivers to its connected client, from the route the router cached.
	if code := rt.send(t, msgReq{To: "bp-online", Payload: "during"}, &res); code != 200 || res.Status != router.Delivered {
		t.Fatalf("send to the online client while Redis is frozen: %d %+v", code, res)
	}
	select {
	case m := <-online.Messages():
		t.Logf("the online client got %q %v after Redis froze", m.Payload, time.Since(frozen).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("the online client got nothing while Redis was frozen and the node held its lease")
	}

	// Load: senders to offline clients, for 4 seconds.
	const senders = 40
	const during = 4 * time.Second
	var mu sync.Mutex
	var lat []time.Duration
	var late []time.Duration // answers that began after the first 503
	var first503 time.Time
	codes := map[int]int{}
	peak := base
	stop := time.Now().Add(during)
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for k := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				body, _ := json.Marshal(msgReq{To: fmt.Sprintf("bp-off-%d-%d", k, i), Payload: "x"})
				start := time.Now()
				resp, err := client.Post(rt.url+"/v1/messages", "application/json", bytes.NewReader(body))
				if err != nil {
					t.Errorf("send while Redis is frozen: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				d := time.Since(start)
				mu.Lock()
				codes[resp.StatusCode]++
				lat = append(lat, d)
				if resp.StatusCode == http.StatusServiceUnavailable {
					if resp.Header.Get("Retry-After") == "" {
						t.Errorf("503 without Retry-After")
					}
					if first503.IsZero() {
						first503 = time.Now()
					} else if start.After(first503) {
						late = append(late, d)
					}
				}
				mu.Unlock()
			}
		}()
	}
	// The router's goroutines while the load runs; and the node's health.
	var health healthz.Report
	sawDegraded := false
	for time.Now().Before(stop) {
		if g, err := metric(metricsAddr, "go_goroutines"); err == nil && g > peak {
			peak = g
		}
		if _, h, err := healthOf(n.member.AdminAddr); err == nil {
			if sc := h.Checks["store"]; sc.Status == healthz.StoreDegraded {
				sawDegraded, health = true, h
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	slices.Sort(lat)
	slices.Sort(late)
	if len(late) == 0 {
		t.Fatalf("no 503 after the first: codes %v", codes)
	}
	t.Logf("%d sends in %v while Redis was frozen: codes %v; first 503 %v after the freeze; all answers p50 %v p99 %v max %v; "+
		"after the first 503: p50 %v p99 %v; router goroutines %v before, at most %v during",
		len(lat), during, codes, first503.Sub(frozen).Round(time.Millisecond), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1],
		late[len(late)/2], late[len(late)*99/100], base, peak)
	if codes[http.StatusServiceUnavailable] != len(lat) {
		t.Errorf("answers %v while Redis was frozen, want only 503", codes)
	}
	if p50 := late[len(late)/2]; p50 > 50*time.Millisecond {
		t.Errorf("503s took %v (median) once the store knew Redis was out of reach, want them at once", p50)
	}
	if max := lat[len(lat)-1]; max > 10*time.Second {
		t.Errorf("the slowest answer took %v", max)
	}
	if peak > base+3*senders+50 {
		t.Errorf("router goroutines rose from %v to %v with %d senders", base, peak, senders)
	}
	if !sawDegraded {
		t.Errorf("the node's /healthz never said store: degraded while Redis was frozen")
	} else {
		t.Logf("node /healthz while Redis was frozen: ready %v, store %+v", health.Ready, health.Checks["store"])
	}

	if err := r.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	back := time.Now()
	testenv.Eventually(t, 15*time.Second, 20*time.Millisecond, func() error {
		var res router.Result
		if code := rt.send(t, msgReq{To: "bp-after", Payload: "after"}, &res); code != 200 || res.Status != router.Queued {
			return fmt.Errorf("send after Redis resumed: %d %+v", code, res)
		}
		return nil
	})
	t.Logf("a send was accepted again %v after Redis resumed", time.Since(back).Round(time.Millisecond))
	c.waitReady(n.member)
}

// healthOf fetches a node's /healthz.
func healthOf(adminAddr string) (int, healthz.Report, error) { return health(adminAddr) }
