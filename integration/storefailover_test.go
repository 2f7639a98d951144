package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// stream sends a steady stream of messages to offline clients through a router: each
// client's messages one after the other (the next is submitted once the previous was
// accepted, so the order promise covers them all), from several senders at once. A
// refused message (503 while the store fails over, or a broken connection) is sent again
// with the same id, as a backend that honours Retry-After would (at once: the test
// measures the store, not the backoff), until it is accepted or the stream stops.
type stream struct {
	l       *ledger
	url     string
	clients []string
	senders int
	client  *http.Client

	mu           sync.Mutex
	attempts     int
	refused      int // attempts not accepted
	dupAnswers   int // accepted as a duplicate: an earlier attempt had stored it
	refusals     []time.Time
	lastAccepted time.Time

	stop chan struct{}
	wg   sync.WaitGroup
}

func newStream(l *ledger, url string, clients []string, senders int) *stream {
	return &stream{l: l, url: url, clients: clients, senders: senders, stop: make(chan struct{}),
		client: &http.Client{Timeout: 20 * time.Second}}
}

func (s *stream) start(t *testing.T) {
	for k := range s.senders {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			var mine []string
			for i, c := range s.clients {
				if i%s.senders == k {
					mine = append(mine, c)
				}
			}
			for seq := 0; ; seq++ {
				for _, c := range mine {
					if !s.sendOne(t, c, fmt.Sprintf("%s-%05d", c, seq)) {
						return
					}
				}
			}
		}()
	}
}

// sendOne sends one message until it is accepted; false when the stream stopped first.
func (s *stream) sendOne(t *testing.T, client, id string) bool {
	body, _ := json.Marshal(msgReq{ID: id, To: client, Payload: id, TTL: "1h"})
	submitted := s.l.submit()
	for {
		select {
		case <-s.stop:
			return false
		default:
		}
		resp, err := s.client.Post(s.url+"/v1/messages", "application/json", bytes.NewReader(body))
		var res router.Result
		ok := false
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if err := json.Unmarshal(raw, &res); err != nil {
					t.Errorf("answer %q: %v", raw, err)
					return false
				}
				ok = true
			} else if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Errorf("send %s: %d %s; want 200, or 503 with Retry-After", id, resp.StatusCode, raw)
			}
		}
		s.mu.Lock()
		s.attempts++
		if ok {
			s.lastAccepted = time.Now()
			if res.Duplicate {
				s.dupAnswers++
			}
		} else {
			s.refused++
			s.refusals = append(s.refusals, time.Now())
		}
		s.mu.Unlock()
		if ok {
			s.l.accept(client, res.ID, submitted, res.Status)
			return true
		}
		select {
		case <-s.stop:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// halt stops the senders and waits for them: a message not accepted by then was not
// accepted.
func (s *stream) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// acceptedSince waits until a message is accepted after t (the store serves again) and
// returns when.
func (s *stream) acceptedAfter(tb *testing.T, t time.Time, within time.Duration) time.Time {
	tb.Helper()
	var at time.Time
	testenv.Eventually(tb, within, 20*time.Millisecond, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.lastAccepted.After(t) {
			at = s.lastAccepted
			return nil
		}
		return fmt.Errorf("no message accepted since %v (%d refused)", t.Format("15:04:05.000"), s.refused)
	})
	return at
}

// drain connects a device for every client to addr and returns once every mailbox is
// empty: a mailbox entry is deleted only after the device acknowledged it, and the devices
// record a message before they acknowledge it, so what they have then is all the store
// kept.
func drain(t *testing.T, ctx context.Context, wg *sync.WaitGroup, routerURL, addr string, clients []string) []*device {
	t.Helper()
	devs := make([]*device, len(clients))
	for i, c := range clients {
		devs[i] = &device{id: c, addrs: []string{addr}}
	}
	startDevices(t, ctx, wg, devs)
	testenv.Eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		for _, c := range clients {
			var v router.Client
			if code := getJSON(t, routerURL+"/v1/clients/"+c, &v); code != http.StatusOK {
				return fmt.Errorf("look up %s: %d", c, code)
			}
			if v.Depth != 0 {
				return fmt.Errorf("%s's mailbox holds %d", c, v.Depth)
			}
		}
		return nil
	})
	return devs
}

func offlineClients(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return out
}

// TestSentinelFailoverUnderLoad kills the Redis primary (kill -9) behind Sentinel while a
// steady stream of messages to offline clients goes through a router (every one into a
// mailbox), then connects the clients and counts what they receive. With durability
// replica every accepted message must arrive, in order per client (a retry of a message
// the old primary took and the new one has is answered as a duplicate). With durability
// none the loss is measured and logged (docs/OPERATIONS.md states it).
func TestSentinelFailoverUnderLoad(t *testing.T) {
	for _, durability := range []string{"replica", "none"} {
		t.Run(durability, func(t *testing.T) { sentinelFailover(t, durability) })
	}
}

func sentinelFailover(t *testing.T, durability string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ss, err := backends.StartSentinelSet(ctx, backends.SentinelConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	c := newClusterOn(t, shared.Ensemble(t).ConnectString(), "")
	c.redisArgs = []string{"--redis-sentinels", strings.Join(ss.SentinelAddrs(), ","), "--redis-master", ss.MasterName(),
		"--redis-durability", durability}
	n := c.startNode("sf-" + durability)
	r := c.startRouter("sfr-" + durability)

	clients := offlineClients("sf"+durability, 40)
	l := newLedger()
	st := newStream(l, r.url, clients, 8)
	st.start(t)
	defer st.halt()
	st.acceptedAfter(t, time.Now().Add(time.Second), 10*time.Second) // a second of steady traffic

	primary, err := ss.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	next, err := ss.WaitFailover(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	promoted := time.Since(killed)
	back := st.acceptedAfter(t, time.Now(), 30*time.Second).Sub(killed)
	st.acceptedAfter(t, time.Now().Add(time.Second), 10*time.Second) // a second more after it
	st.halt()
	st.mu.Lock()
	var window time.Duration
	if len(st.refusals) > 0 {
		window = st.refusals[len(st.refusals)-1].Sub(st.refusals[0])
	}
	attempts, refused, dups := st.attempts, st.refused, st.dupAnswers
	st.mu.Unlock()

	var wg sync.WaitGroup
	dctx, dcancel := context.WithCancel(context.Background())
	defer func() { dcancel(); wg.Wait() }()
	devs := drain(t, dctx, &wg, r.url, n.member.MQTTAddr, clients)
	l.fromDevices(devs)
	tl := l.report()
	t.Logf("durability %s: killed primary %s; sentinels promoted %s after %v; first message accepted %v after the kill; "+
		"%d attempts, %d refused (503) over %v, %d accepted as duplicates of an earlier attempt; %v",
		durability, primary.Addr, next.Addr, promoted.Round(time.Millisecond), back.Round(time.Millisecond),
		attempts, refused, window.Round(time.Millisecond), dups, tl)
	if tl.Reordered > 0 {
		t.Errorf("%d messages arrived out of order: %v", tl.Reordered, tl.Examples)
	}
	if durability == "replica" && tl.Lost > 0 {
		t.Errorf("durability replica lost %d accepted messages: %v", tl.Lost, tl.Examples)
	}
}

// TestClusterSlotMigrationUnderLoad moves 2000 of a Redis Cluster's slots from one
// primary to another and back (`redis-cli --cluster reshard`, which migrates their keys
// while clients go on) under a steady stream of messages to offline clients through a
// router; then the clients connect and drain their mailboxes. Nothing accepted is lost and
// nothing arrives out of order.
func TestClusterSlotMigrationUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rc, err := backends.StartRedisCluster(ctx, backends.RedisClusterConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	c := newClusterOn(t, shared.Ensemble(t).ConnectString(), "")
	c.redisArgs = []string{"--redis-cluster", strings.Join(rc.Addrs(), ",")}
	n := c.startNode("cm1")
	r := c.startRouter("cmr")

	clients := offlineClients("cm", 60)
	l := newLedger()
	st := newStream(l, r.url, clients, 8)
	st.start(t)
	defer st.halt()
	st.acceptedAfter(t, time.Now().Add(500*time.Millisecond), 10*time.Second)

	nodes, err := rc.ClusterNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var primaries []backends.ClusterNode
	for _, cn := range nodes {
		if cn.Primary && cn.Slots > 0 {
			primaries = append(primaries, cn)
		}
	}
	from, to := primaries[0], primaries[1]
	start := time.Now()
	if err := rc.Reshard(ctx, from.ID, to.ID, 2000, 10); err != nil {
		t.Fatal(err)
	}
	there := time.Since(start)
	if err := rc.Reshard(ctx, to.ID, from.ID, 2000, 10); err != nil {
		t.Fatal(err)
	}
	both := time.Since(start)
	st.halt()
	st.mu.Lock()
	attempts, refused, dups := st.attempts, st.refused, st.dupAnswers
	st.mu.Unlock()

	var wg sync.WaitGroup
	dctx, dcancel := context.WithCancel(context.Background())
	defer func() { dcancel(); wg.Wait() }()
	devs := drain(t, dctx, &wg, r.url, n.member.MQTTAddr, clients)
	l.fromDevices(devs)
	tl := l.report()
	t.Logf("moved 2000 slots %s -> %s in %v and back in %v; %d attempts, %d refused, %d duplicates answered; %v",
		from.Addr, to.Addr, there.Round(time.Millisecond), (both - there).Round(time.Millisecond), attempts, refused, dups, tl)
	if tl.Lost > 0 || tl.Reordered > 0 {
		t.Fatalf("lost %d, reordered %d: %v", tl.Lost, tl.Reordered, tl.Examples)
	}
	if tl.Accepted < 100 {
		t.Fatalf("only %d messages accepted during the moves", tl.Accepted)
	}
}
