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

// TestJoinTakesTheProbeOnlyIntoAnIdleQueue: a call joining a busy batch queue while a
// probe is due is refused without taking the probe, so a call not batched (an Append, a
// Finish) can still probe at once; into an idle queue, whose batch goes at once, it takes
// the probe, and a call after it is refused.
func TestJoinTakesTheProbeOnlyIntoAnIdleQueue(t *testing.T) {
	g := newGuard(slog.New(slog.DiscardHandler), "test")
	g.done(false, time.Now(), errors.New("connection reset by peer"), outageAfter)
	g.mu.Lock()
	g.nextProbe = time.Now() // a probe is due
	g.mu.Unlock()
	if _, err := g.join(false); err == nil {
		t.Fatal("a call joined a busy queue during an outage")
	}
	if probe, err := g.admit(); err != nil || !probe {
		t.Fatalf("a call not batched after a refused join: probe %v, %v; want the probe", probe, err)
	}
	g.done(true, time.Now(), errors.New("connection reset by peer"), 1) // the probe failed
	g.mu.Lock()
	g.nextProbe = time.Now()
	g.mu.Unlock()
	if probe, err := g.join(true); err != nil || !probe {
		t.Fatalf("join into an idle queue with a probe due: probe %v, %v; want the probe", probe, err)
	}
	if _, err := g.join(true); err == nil {
		t.Fatal("a call joined while the probe was out")
	}
}
