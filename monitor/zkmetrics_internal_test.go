package monitor

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeZK answers srvr on a loopback port with a fixed mode; "" answers as a server that
// is up but out of the quorum.
type fakeZK struct {
	l    net.Listener
	mu   sync.Mutex
	mode string
	wg   sync.WaitGroup
}

func startFakeZK(t *testing.T, mode string) *fakeZK {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z := &fakeZK{l: l, mode: mode}
	z.wg.Add(1)
	go func() {
		defer z.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = io.ReadFull(c, make([]byte, 4))
			z.mu.Lock()
			mode := z.mode
			z.mu.Unlock()
			if mode == "" {
				_, _ = io.WriteString(c, "This ZooKeeper instance is not currently serving requests\n")
			} else {
				_, _ = fmt.Fprintf(c, "Zookeeper version: 3.8.0-test, built on 2026-01-01\nLatency min/avg/max: 0/2.5/9\n"+
					"Received: 10\nSent: 9\nConnections: 4\nOutstanding: 1\nZxid: 0x10000002a\nMode: %s\nNode count: 42\n", mode)
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); z.wg.Wait() })
	return z
}

func (z *fakeZK) set(mode string) { z.mu.Lock(); z.mode = mode; z.mu.Unlock() }

// zkGauges gathers the collector: "name" or "name{server}" → value.
func zkGauges(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetValue() + "}"
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestZKCollector(t *testing.T) {
	leader, f1, f2 := startFakeZK(t, "leader"), startFakeZK(t, "follower"), startFakeZK(t, "follower")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	down := l.Addr().String() // nothing listens there any more
	l.Close()
	c := newZKCollector([]string{leader.l.Addr().String(), f1.l.Addr().String(), f2.l.Addr().String(), down}, time.Second)

	got := zkGauges(t, c)
	a := leader.l.Addr().String()
	want := map[string]float64{
		"switchboard_monitor_zk_quorum":                                      1, // 3 of 4 serve, with a leader
		"switchboard_monitor_zk_server_serving{" + a + "}":                   1,
		"switchboard_monitor_zk_server_leader{" + a + "}":                    1,
		"switchboard_monitor_zk_server_leader{" + f1.l.Addr().String() + "}": 0,
		"switchboard_monitor_zk_server_latency_avg_seconds{" + a + "}":       0.0025,
		"switchboard_monitor_zk_server_outstanding_requests{" + a + "}":      1,
		"switchboard_monitor_zk_server_connections{" + a + "}":               4,
		"switchboard_monitor_zk_server_znodes{" + a + "}":                    42,
		"switchboard_monitor_zk_server_serving{" + down + "}":                0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["switchboard_monitor_zk_server_znodes{"+down+"}"]; ok {
		t.Errorf("a server that did not answer has a znode count: unknown is not zero")
	}

	// Two of four out of the quorum: no majority serves.
	f1.set("")
	f2.set("")
	got = zkGauges(t, c)
	if got["switchboard_monitor_zk_quorum"] != 0 || got["switchboard_monitor_zk_server_serving{"+f1.l.Addr().String()+"}"] != 0 {
		t.Fatalf("after losing the quorum: %v", got)
	}
}
