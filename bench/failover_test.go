package bench

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestRunDirectReconnect cuts every client's link in the middle of a run: each must come
// back through another address, subscribe again and receive what is accepted for it after.
// The fake router has no mailbox, so it refuses messages for a client that is away (as a
// router answers an error when it cannot queue), and the cut waits until nothing is in
// flight, so what was accepted before the cut has arrived.
func TestRunDirectReconnect(t *testing.T) {
	f := &fakeRouter{}
	cfg := directSetup(t, f)
	first, second := testenv.StartProxy(t, cfg.MQTT[0]), testenv.StartProxy(t, cfg.MQTT[0])
	cfg.MQTT, cfg.ReconnectMQTT = []string{first.Addr}, []string{first.Addr, second.Addr}
	cfg.Reconnect, cfg.ReconnectJitter = true, 100*time.Millisecond
	cfg.Clients, cfg.Senders, cfg.Count, cfg.Rate = 10, 2, 3000, 1500

	var published, publishedAfter atomic.Int64
	paused, cut := false, false
	f.away = func(to string) bool {
		if paused {
			return true
		}
		if cl, ok := f.srv.Clients.Get(to); !ok || cl.Closed() {
			return true
		}
		if _, ok := f.srv.Topics.Subscribers("inbox/" + to).Subscriptions[to]; !ok {
			return true
		}
		published.Add(1)
		if cut {
			publishedAfter.Add(1)
		}
		return false
	}
	counts := func() (int64, int64) { return published.Load(), publishedAfter.Load() }
	setPaused := func(p, c bool) {
		f.gate.Lock()
		paused, cut = p, c
		f.gate.Unlock()
	}

	done := make(chan struct{})
	var res *Result
	var err error
	go func() { defer close(done); res, err = RunDirect(context.Background(), cfg) }()

	waitUntil(t, "300 messages published", func() bool { n, _ := counts(); return n >= 300 })
	setPaused(true, false)
	waitUntil(t, "nothing in flight", func() bool { return inflight(f.srv) == 0 })
	old := f.srv.Clients.GetAll()
	first.Cut()
	// Until the broker has seen every old connection end, a subscription may be the old one's.
	waitUntil(t, "the old connections closed", func() bool {
		for _, cl := range old {
			if !cl.Net.Inline && !cl.Closed() {
				return false
			}
		}
		return true
	})
	setPaused(false, true)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	c, fo := res.Completeness, res.Failover
	if !res.OK || c.Missing != 0 || c.OutOfOrder != 0 {
		t.Fatalf("%+v %+v", res, c)
	}
	if _, after := counts(); after == 0 || c.Received < 300+after {
		t.Fatalf("received %d, published %d after the cut: the clients did not carry on", c.Received, after)
	}
	if fo == nil || fo.Dropped != cfg.Clients || fo.Reconnected != cfg.Clients || fo.AllBack <= 0 ||
		fo.AllBack != fo.Back.Max || fo.Drained < fo.Back.Min || fo.KilledPID != 0 {
		t.Fatalf("failover %+v", fo)
	}
}

// inflight counts the QoS 1 messages the broker has sent and not had acknowledged.
func inflight(srv *mqtt.Server) int {
	n := 0
	for _, cl := range srv.Clients.GetAll() {
		n += cl.State.Inflight.Len()
	}
	return n
}

// waitUntil polls cond until it holds, failing the test after 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFailoverConfigValidate(t *testing.T) {
	for _, c := range []struct {
		change func(*DirectConfig)
		want   string
	}{
		{func(c *DirectConfig) { c.KillPID = -1 }, "KillPID"},
		{func(c *DirectConfig) { c.Reconnect, c.Burst, c.Duration = true, 10, 0 }, "Burst"},
		{func(c *DirectConfig) { c.Reconnect, c.ReconnectJitter = true, 0 }, "ReconnectJitter"},
		{func(c *DirectConfig) { c.KillPID, c.KillAfter = 1, 0 }, "KillAfter"},
	} {
		cfg := DefaultDirectConfig()
		c.change(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %s", cfg, err, c.want)
		}
	}
}
