package bench

import (
	"strings"
	"testing"
)

// feed accepts messages 0..n-1 of stream 0 (except refused ones), then receives recv in
// order.
func feed(n int, refused map[uint32]bool, recv []uint32) Completeness {
	c := NewChecker(2)
	for i := range uint32(n) {
		if refused[i] {
			c.Refuse(0, i)
		} else {
			c.Accept(0, i)
		}
	}
	for _, s := range recv {
		c.Receive(0, s)
	}
	return c.Result()
}

func TestCheckerComplete(t *testing.T) {
	v := feed(5, nil, []uint32{0, 1, 2, 3, 4})
	if !v.OK() || v.Accepted != 5 || v.Received != 5 || v.Missing+v.Duplicates+v.OutOfOrder+v.Unexpected != 0 {
		t.Fatalf("%+v", v)
	}
}

func TestCheckerMissing(t *testing.T) {
	v := feed(5, nil, []uint32{0, 1, 3, 4})
	if v.OK() || v.Missing != 1 || v.OutOfOrder != 0 {
		t.Fatalf("%+v", v)
	}
	if len(v.Examples) != 1 || !strings.Contains(v.Examples[0], "message 2 accepted but never received") {
		t.Fatalf("examples %q", v.Examples)
	}
}

func TestCheckerDuplicatesAreNotDisorder(t *testing.T) {
	// At-least-once: a redelivery of an earlier message, even late, is a duplicate only.
	v := feed(4, nil, []uint32{0, 1, 1, 2, 0, 3, 3})
	if !v.OK() || v.Duplicates != 3 || v.Received != 4 {
		t.Fatalf("%+v", v)
	}
}

func TestCheckerReordered(t *testing.T) {
	v := feed(5, nil, []uint32{0, 2, 1, 3, 4})
	if v.OK() || v.OutOfOrder != 1 || v.Missing != 0 {
		t.Fatalf("%+v", v)
	}
	if !strings.Contains(v.Examples[0], "message 2 arrived before message 1") {
		t.Fatalf("examples %q", v.Examples)
	}
	// Every message of a block that jumped ahead counts.
	v = feed(6, nil, []uint32{3, 4, 5, 0, 1, 2})
	if v.OutOfOrder != 3 {
		t.Fatalf("%+v", v)
	}
}

func TestCheckerRefused(t *testing.T) {
	// A refused message may or may not arrive; where it lands does not break order.
	refused := map[uint32]bool{1: true, 3: true}
	v := feed(5, refused, []uint32{0, 2, 1, 4})
	if !v.OK() || v.Refused != 2 || v.Unexpected != 1 || v.Accepted != 3 {
		t.Fatalf("%+v", v)
	}
}

func TestCheckerStreamsAreIndependent(t *testing.T) {
	c := NewChecker(2)
	for i := range uint32(3) {
		c.Accept(0, i)
		c.Accept(1, i)
	}
	for _, s := range []uint32{0, 1, 2} {
		c.Receive(1, s)
	}
	for _, s := range []uint32{0, 1, 2} {
		c.Receive(0, s)
	}
	if v := c.Result(); !v.OK() || v.Received != 6 {
		t.Fatalf("%+v", v)
	}
	// A message received but never sent is unexpected.
	c.Receive(1, 10)
	if v := c.Result(); v.Unexpected != 1 || !v.OK() {
		t.Fatalf("%+v", v)
	}
}

func TestCheckerConcurrentSides(t *testing.T) {
	const n = 50_000
	c := NewChecker(4)
	done := make(chan struct{})
	for s := range 4 {
		go func() {
			for i := range uint32(n) {
				c.Accept(s, i)
			}
			done <- struct{}{}
		}()
		go func() {
			for i := range uint32(n) {
				c.Receive(s, i)
			}
			done <- struct{}{}
		}()
	}
	for range 8 {
		<-done
	}
	if v := c.Result(); !v.OK() || v.Received != 4*n || v.Accepted != 4*n {
		t.Fatalf("%+v", v)
	}
}
