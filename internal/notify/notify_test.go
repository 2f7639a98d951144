package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// TestEachRunsAgainAfterAChangeDuringItsCall: a change made while fn runs (here, by fn
// itself on its first call) makes Each call fn again; a change before Each began is
// covered by the first call.
func TestEachRunsAgainAfterAChangeDuringItsCall(t *testing.T) {
	var v notify.Value[int]
	v.Set(1) // before Each: nobody waits, the first call covers it
	calls := make(chan int, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		notify.Each(ctx, func() <-chan struct{} { _, ch := v.Get(); return ch }, func() {
			now := v.Load()
			if now == 1 {
				v.Set(2) // a change while fn runs
			}
			calls <- now
		})
	}()
	for _, want := range []int{1, 2} {
		select {
		case got := <-calls:
			if got != want {
				t.Fatalf("call saw %d, want %d", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no call for value %d: the change during the previous call was missed", want)
		}
	}
	cancel()
	<-done
	if len(calls) != 0 {
		t.Fatalf("%d calls more than the changes", len(calls))
	}
}
