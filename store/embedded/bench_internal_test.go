package embedded

import (
	"fmt"
	"sync"
	"testing"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// The package's own benchmarks, on the same work as the engine choice's (see
// choice_bench_test.go): clients goroutines each append to, or drain, their own mailbox,
// with 256-byte payloads, every operation durable.
const (
	benchClients = 8
	benchBatch   = 32
)

// benchRun runs n operations spread over benchClients goroutines; client c runs
// benchOps(n, c) of them, numbered from 0.
func benchRun(b *testing.B, n int, op func(c, i int) error) {
	var wg sync.WaitGroup
	for c := range benchClients {
		wg.Go(func() {
			for i := range benchOps(n, c) {
				if err := op(c, i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// benchOps is how many of n operations client c runs.
func benchOps(n, c int) int {
	ops := n / benchClients
	if c < n%benchClients {
		ops++
	}
	return ops
}

func benchMessage(c, i int) store.Message {
	m := storetest.NewMessage(fmt.Sprint("client-", c), fmt.Sprint("m", i))
	m.Payload = make([]byte, 256)
	return m
}

func BenchmarkAppend(b *testing.B) {
	s := openT(b)
	b.ResetTimer()
	benchRun(b, b.N, func(c, i int) error {
		_, err := s.Append(b.Context(), 1<<30, []store.Message{benchMessage(c, i)})
		return err
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkDrain times a Peek of 32 messages and their Remove; each operation drains 32.
func BenchmarkDrain(b *testing.B) {
	s := openT(b)
	// Fill the mailboxes in one transaction: the drain is what is timed.
	var msgs []store.Message
	for c := range benchClients {
		for i := range benchOps(b.N, c) * benchBatch {
			msgs = append(msgs, benchMessage(c, i))
		}
	}
	fill(b, s, msgs)
	b.ResetTimer()
	benchRun(b, b.N, func(c, _ int) error {
		client := fmt.Sprint("client-", c)
		msgs, err := s.Peek(b.Context(), client, 0, benchBatch)
		if err != nil {
			return err
		}
		if len(msgs) != benchBatch {
			return fmt.Errorf("peek %s: %d messages, want %d", client, len(msgs), benchBatch)
		}
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			ids[i] = m.ID
		}
		return s.Remove(b.Context(), store.Removal{Client: client, IDs: ids})
	})
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "msgs/s")
}
