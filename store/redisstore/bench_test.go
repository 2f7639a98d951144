package redisstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchboard-mqtt/switchboard/store"
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
