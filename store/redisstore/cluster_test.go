package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// sharedServers holds servers the package's tests share: started on first use, stopped by
// TestMain after every test ran.
type sharedServers struct {
	mu      sync.Mutex
	dir     string
	cluster *backends.RedisCluster
}

// sharedCluster returns the package's Redis Cluster: 3 primaries, each with a replica.
// Tests that move slots leave it serving every slot.
func sharedCluster(t testing.TB) *backends.RedisCluster {
	t.Helper()
	clusters.mu.Lock()
	defer clusters.mu.Unlock()
	if clusters.cluster == nil {
		dir, err := os.MkdirTemp("", "switchboard-cluster-")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, err := backends.StartRedisCluster(ctx, backends.RedisClusterConfig{Dir: filepath.Join(dir, "cluster")})
		if err != nil {
			os.RemoveAll(dir)
			t.Fatalf("start Redis Cluster: %v", err)
		}
		clusters.dir, clusters.cluster = dir, c
	}
	return clusters.cluster
}

func (s *sharedServers) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cluster != nil {
		s.cluster.Close()
		os.RemoveAll(s.dir)
		s.cluster = nil
	}
}

// clusterConfig is a config for the cluster on a fresh namespace.
func clusterConfig(t testing.TB, c *backends.RedisCluster) redisstore.Config {
	cfg := testConfig(t, "")
	cfg.Addr = ""
	cfg.ClusterAddrs = c.Addrs()[:2]
	// Six servers share this machine's cores with the tests: give a replica longer than
	// the default to acknowledge (the tests count waits, they do not time them).
	cfg.DurabilityTimeout = 1500 * time.Millisecond
	return cfg
}

// clusterRaw is a plain cluster client for looking at what a store wrote.
func clusterRaw(t testing.TB, c *backends.RedisCluster) *redis.ClusterClient {
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { rc.Close() })
	return rc
}

// commandCalls sums INFO commandstats' calls of cmd over the cluster's primaries.
func commandCalls(t *testing.T, rc *redis.ClusterClient, cmd string) int {
	t.Helper()
	var mu sync.Mutex
	total := 0
	err := rc.ForEachMaster(t.Context(), func(ctx context.Context, m *redis.Client) error {
		info, err := m.Info(ctx, "commandstats").Result()
		if err != nil {
			return err
		}
		for line := range strings.Lines(info) {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls=")
			if !ok {
				continue
			}
			n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
			mu.Lock()
			total += n
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// TestClusterDurableBatch: on a cluster whose primaries all have a replica, the store
// chooses durability replica by itself, and an Append of messages for many clients (on
// every primary) ends each primary's share of the pipeline with one WAIT: one per
// primary, not one per message.
func TestClusterDurableBatch(t *testing.T) {
	c := sharedCluster(t)
	s := open(t, clusterConfig(t, c))
	if d := s.Durability(); d != redisstore.DurabilityReplica {
		t.Fatalf("durability %q on a cluster with replicas, want replica", d)
	}
	rc := clusterRaw(t, c)
	var msgs []store.Message
	for i := range 300 {
		msgs = append(msgs, storetest.NewMessage(fmt.Sprint("c", i), fmt.Sprint("m", i)))
	}
	// The first run on each primary loads the script (NOSCRIPT, then a second pipeline).
	if _, err := s.Append(t.Context(), 10, msgs); err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		msgs[i].ID += "-again"
	}
	before := commandCalls(t, rc, "wait")
	res, err := s.Append(t.Context(), 10, msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Depth != 2 {
			t.Fatalf("message %d: %+v", i, r)
		}
	}
	waits := commandCalls(t, rc, "wait") - before
	t.Logf("an Append of %d messages for %d clients sent %d WAITs", len(msgs), len(msgs), waits)
	if waits < 1 || waits > 3 {
		t.Fatalf("%d WAITs for one Append on 3 primaries, want one per primary", waits)
	}
}

// TestClusterSlotMigration appends to many mailboxes from several goroutines while
// redis-cli moves a third of the slots (and their keys) from one primary to another, and
// back: the store follows ASK and MOVED redirections and sends again what Redis answered
// TRYAGAIN (a client's keys split between two nodes for a moment). Every message whose
// Append succeeded is in its mailbox, once, in append order. A failed Append (while a slot
// is unstable) is retried by the test with the same ids, as a router's caller would; a
// retry that finds a message there reports it as a duplicate.
func TestClusterSlotMigration(t *testing.T) {
	c := sharedCluster(t)
	cfg := clusterConfig(t, c)
	s := open(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	const clients, writers = 200, 4
	var mu sync.Mutex
	sent := map[string][]string{} // client -> ids, in the order appended
	var failures, retried, dups int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	defer halt()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				// Each writer has clients of its own, so a client's messages are appended
				// one call after the other, in order; an Append that failed is retried
				// before the writer goes on.
				var batch []store.Message
				for k := range 8 {
					client := fmt.Sprint("mig-", w+writers*((n*8+k)%(clients/writers)))
					batch = append(batch, storetest.NewMessage(client, fmt.Sprintf("w%d-%d-%d", w, n, k)))
				}
				for attempt := 0; ; attempt++ {
					actx, acancel := context.WithTimeout(ctx, 5*time.Second)
					res, err := s.Append(actx, 1<<20, batch)
					acancel()
					if err == nil {
						mu.Lock()
						for i, r := range res {
							if r.Err != nil {
								t.Errorf("append %s: %v", batch[i].ID, r.Err)
							}
							// A duplicate is in the mailbox too: go-redis sends a node's
							// share of a pipeline again when its first command is answered
							// TRYAGAIN, and the scripts that ran the first time find their
							// message there.
							if r.Duplicate {
								dups++
							}
							if ids := sent[batch[i].To]; !slices.Contains(ids, batch[i].ID) {
								sent[batch[i].To] = append(ids, batch[i].ID)
							}
						}
						if attempt > 0 {
							retried++
						}
						mu.Unlock()
						break
					}
					mu.Lock()
					failures++
					mu.Unlock()
					if !errors.Is(err, store.ErrUnavailable) || attempt == 20 || ctx.Err() != nil {
						t.Errorf("append during migration: %v (attempt %d)", err, attempt)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	nodes, err := c.ClusterNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var primaries []backends.ClusterNode
	for _, n := range nodes {
		if n.Primary && n.Slots > 0 {
			primaries = append(primaries, n)
		}
	}
	if len(primaries) < 2 {
		t.Fatalf("primaries %+v", primaries)
	}
	from, to := primaries[0], primaries[1]
	time.Sleep(300 * time.Millisecond) // some mailboxes hold messages before their slots move
	start := time.Now()
	if err := c.Reshard(ctx, from.ID, to.ID, 2000, 10); err != nil {
		t.Fatal(err)
	}
	t.Logf("moved 2000 slots from %s to %s in %v", from.Addr, to.Addr, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if err := c.Reshard(ctx, to.ID, from.ID, 2000, 10); err != nil {
		t.Fatal(err)
	}
	t.Logf("moved them back in %v", time.Since(start).Round(time.Millisecond))
	halt()
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}

	total, lost, reordered := 0, 0, 0
	for client, ids := range sent {
		total += len(ids)
		var got []string
		for after := uint64(0); ; {
			msgs, err := s.Peek(ctx, client, after, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				got = append(got, m.ID)
			}
			if len(msgs) < 1000 {
				break
			}
			after = msgs[len(msgs)-1].Seq
		}
		for _, id := range ids {
			if !slices.Contains(got, id) {
				lost++
			}
		}
		if !slices.Equal(got, ids) {
			reordered++
			if reordered < 3 {
				i := 0
				for i < min(len(got), len(ids)) && got[i] == ids[i] {
					i++
				}
				t.Errorf("mailbox of %s (%d messages, want %d) differs from message %d on: %v, want %v",
					client, len(got), len(ids), i, got[i:min(len(got), i+5)], ids[i:min(len(ids), i+5)])
			}
		}
	}
	t.Logf("%d messages appended to %d mailboxes during the moves; %d Appends failed and were retried (%d succeeded on a retry, %d duplicates found); lost %d, mailboxes out of order %d",
		total, len(sent), failures, retried, dups, lost, reordered)
	if lost > 0 || reordered > 0 {
		t.Fatalf("lost %d, out of order %d", lost, reordered)
	}
}
