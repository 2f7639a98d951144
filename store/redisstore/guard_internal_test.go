package redisstore

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

// TestLateReplyDoesNotEndAnOutage: the reply to a call sent before the outage was declared
// (Redis answered it, then froze, and the reader got to it late) leaves the outage on; the
// probe's reply ends it.
func TestLateReplyDoesNotEndAnOutage(t *testing.T) {
	g := newGuard(slog.New(slog.DiscardHandler), "test")
	sent := time.Now().Add(-time.Second)
	g.done(false, time.Now(), errors.New("connection reset by peer"), outageAfter)
	if !g.out.Load() {
		t.Fatal("not out of reach after a failed round trip of outageAfter calls")
	}
	g.done(false, sent, nil, 1)
	if !g.out.Load() {
		t.Fatal("a reply to a call sent before the outage ended it")
	}
	if _, err := g.admit(); err == nil {
		t.Fatal("a call was let in while out of reach and no probe was due")
	}
	g.done(true, time.Now(), nil, 1)
	if g.out.Load() {
		t.Fatal("the probe's reply did not end the outage")
	}
}

// TestJoinLeavesTheProbeToTheRoundTrip: a call joining a batch queue when a probe is due
// joins without taking it, so a call not batched (an Append, a Finish) can still probe at
// once; while a probe is out, joining is refused.
func TestJoinLeavesTheProbeToTheRoundTrip(t *testing.T) {
	g := newGuard(slog.New(slog.DiscardHandler), "test")
	g.done(false, time.Now(), errors.New("connection reset by peer"), outageAfter)
	g.mu.Lock()
	g.nextProbe = time.Now() // a probe is due
	g.mu.Unlock()
	if err := g.join(); err != nil {
		t.Fatalf("join with a probe due: %v", err)
	}
	probe, err := g.admit()
	if err != nil || !probe {
		t.Fatalf("a round trip after a call joined: probe %v, %v; want the probe", probe, err)
	}
	if err := g.join(); err == nil {
		t.Fatal("a call joined while the probe was out")
	}
}
