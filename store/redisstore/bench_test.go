package redisstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// benchClients spreads the benchmark over this many mailboxes.
const benchClients = 1000

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
			if _, err := s.Append(b.Context(), m, 1<<30); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkLookup(b *testing.B) {
	s := open(b, testConfig(b, shared.Redis(b).Addr))
	for i := range benchClients {
		c := fmt.Sprint("bench-", i)
		if _, err := s.Connect(b.Context(), storetest.NewPresence(c, "n1", 1)); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Append(b.Context(), storetest.NewMessage(c, "m"), 10); err != nil {
			b.Fatal(err)
		}
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
