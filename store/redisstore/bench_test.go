package redisstore_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// benchClients spreads the benchmark over this many mailboxes.
const benchClients = 1000

// BenchmarkAppend appends one message per call.
func BenchmarkAppend(b *testing.B) {
	s := open(b, testConfig(b, shared.Redis(b).Addr))
	var seq atomic.Int64
	b.ReportAllocs()
	// Many callers at once, as many client goroutines of a node would be.
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			m := storetest.NewMessage(fmt.Sprint("bench-", n%benchClients), fmt.Sprint("m", n))
			if _, err := s.Append(b.Context(), 1<<30, []store.Message{m}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppendBatch appends 64 messages for as many clients per call, as a router
// appends what it accepted together; one op is one message.
func BenchmarkAppendBatch(b *testing.B) {
	const batch = 64
	s := open(b, testConfig(b, shared.Redis(b).Addr))
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		msgs := make([]store.Message, 0, batch)
		flush := func() bool {
			if len(msgs) == 0 {
				return true
			}
			_, err := s.Append(b.Context(), 1<<30, msgs)
			msgs = msgs[:0]
			if err != nil {
				b.Error(err)
			}
			return err == nil
		}
		for pb.Next() {
			n := seq.Add(1)
			msgs = append(msgs, storetest.NewMessage(fmt.Sprint("bench-", n%benchClients), fmt.Sprint("m", n)))
			if len(msgs) == batch && !flush() {
				return
			}
		}
		flush()
	})
}

func BenchmarkLookup(b *testing.B) {
	s := open(b, testConfig(b, shared.Redis(b).Addr))
	var msgs []store.Message
	for i := range benchClients {
		c := fmt.Sprint("bench-", i)
		if _, err := s.Connect(b.Context(), storetest.NewPresence(c, "n1", 1)); err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, storetest.NewMessage(c, "m"))
	}
	if _, err := s.Append(b.Context(), 10, msgs); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	b.ReportAllocs()
	// Many callers at once, as many client goroutines of a node would be.
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := fmt.Sprint("bench-", seq.Add(1)%benchClients)
			if _, _, err := s.Lookup(b.Context(), c); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDurability appends queued messages (offline clients, as a router does) with each
// durability setting, against a primary with one replica and against the package's Redis
// Cluster (3 primaries, each with a replica): one message per call from 16 goroutines,
// and batches of 64 messages for as many clients from 4 goroutines. It reports messages
// per second and the 99th percentile of one call. aof needs Redis 7.2 (WAITAOF); on an
// older server it is left out (and said so).
func BenchmarkDurability(b *testing.B) {
	p, _ := startReplicated(b)
	c := sharedCluster(b)
	version := ""
	if info, err := rawClient(b, p.Addr).Info(b.Context(), "server").Result(); err == nil {
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				version = v
			}
		}
	}
	for _, target := range []struct {
		name string
		cfg  func() redisstore.Config
	}{
		{"primary+replica", func() redisstore.Config { return testConfig(b, p.Addr) }},
		{"cluster", func() redisstore.Config { return clusterConfig(b, c) }},
	} {
		for _, d := range []redisstore.Durability{redisstore.DurabilityNone, redisstore.DurabilityReplica, redisstore.DurabilityAOF} {
			if d == redisstore.DurabilityAOF && !versionAtLeast72(version) {
				b.Logf("durability aof left out: Redis %s has no WAITAOF (7.2 or later)", version)
				continue
			}
			for _, shape := range []struct {
				name         string
				batch, procs int
			}{{"1msg", 1, 16}, {"64msgs", 64, 4}} {
				b.Run(fmt.Sprintf("%s/%s/%s", target.name, d, shape.name), func(b *testing.B) {
					cfg := target.cfg()
					cfg.Durability = d
					s := open(b, cfg)
					benchAppends(b, s, shape.batch, shape.procs)
				})
			}
			b.Run(fmt.Sprintf("%s/%s/drain", target.name, d), func(b *testing.B) {
				cfg := target.cfg()
				cfg.Durability = d
				s := open(b, cfg)
				benchDrain(b, s)
			})
		}
	}
}

// benchAppends appends b.N messages in calls of batch messages from procs goroutines, and
// reports msgs/s and the p99 of a call in milliseconds.
func benchAppends(b *testing.B, s *redisstore.Store, batch, procs int) {
	var seq atomic.Int64
	var mu sync.Mutex
	var took []time.Duration
	b.SetParallelism(procs)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		msgs := make([]store.Message, 0, batch)
		var mine []time.Duration
		flush := func() bool {
			if len(msgs) == 0 {
				return true
			}
			t0 := time.Now()
			_, err := s.Append(b.Context(), 1<<30, msgs)
			mine = append(mine, time.Since(t0))
			msgs = msgs[:0]
			if err != nil {
				b.Error(err)
			}
			return err == nil
		}
		for pb.Next() {
			n := seq.Add(1)
			msgs = append(msgs, storetest.NewMessage(fmt.Sprint("bench-", n%benchClients), fmt.Sprint("m", n)))
			if len(msgs) == batch && !flush() {
				return
			}
		}
		flush()
		mu.Lock()
		took = append(took, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(took) == 0 {
		return
	}
	slices.Sort(took)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// benchDrain fills the mailboxes of drainClients clients with b.N messages in all (not
// timed), then drains them as a node does when its clients come online: each of 8
// goroutines reads the 32 oldest messages of one of its clients (Peek) and removes them
// (Remove), until every mailbox is empty. It reports drained messages per second.
func benchDrain(b *testing.B, s *redisstore.Store) {
	const drainClients, workers, page = 64, 8, 32
	prefix := fmt.Sprintf("drain-%d-", time.Now().UnixNano())
	batch := make([]store.Message, 0, 256)
	for i := 0; i < b.N; i++ {
		batch = append(batch, storetest.NewMessage(fmt.Sprint(prefix, i%drainClients), fmt.Sprint("d", i)))
		if len(batch) == cap(batch) || i == b.N-1 {
			if _, err := s.Append(b.Context(), 1<<30, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	var drained atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for c := w; c < drainClients; c += workers {
				client := fmt.Sprint(prefix, c)
				for {
					msgs, err := s.Peek(b.Context(), client, 0, page)
					if err != nil {
						b.Error(err)
						return
					}
					if len(msgs) == 0 {
						break
					}
					ids := make([]string, len(msgs))
					for i, m := range msgs {
						ids[i] = m.ID
					}
					if err := s.Remove(b.Context(), store.Removal{Client: client, IDs: ids}); err != nil {
						b.Error(err)
						return
					}
					drained.Add(int64(len(msgs)))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if got := drained.Load(); got != int64(b.N) {
		b.Fatalf("drained %d messages, appended %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(0, "ns/op")
}
