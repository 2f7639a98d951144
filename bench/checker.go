package bench

import (
	"fmt"
	"sync/atomic"
)

// Checker checks that numbered messages arrive complete and in order, stream by stream (a
// stream is what one sender sends to one receiver: a client's inbox, a pub/sub pair).
//
// For each stream, one goroutine at a time may call Accept/Refuse (the sender side) and
// one goroutine at a time may call Receive (the receiver side); the two sides may run
// concurrently, as may different streams. Result must be called once both have stopped.
type Checker struct {
	streams  []checkStream
	accepted atomic.Int64
	refused  atomic.Int64
	received atomic.Int64 // first receipts
	dups     atomic.Int64
}

type checkStream struct {
	// sender side
	state []uint8  // by sequence number: 0 not sent, stateAccepted, stateRefused
	_     [40]byte // keeps the two sides, written by different goroutines, off one cache line
	// receiver side
	ord     []uint32 // by sequence number: 1-based ordinal of its first receipt, 0 not yet
	nextOrd uint32
}

const (
	stateAccepted = 1
	stateRefused  = 2
)

// NewChecker returns a checker for n streams.
func NewChecker(n int) *Checker {
	return &Checker{streams: make([]checkStream, n)}
}

func grow[T any](s []T, i int) []T {
	if i < len(s) {
		return s
	}
	if i < cap(s) {
		return s[:i+1]
	}
	n := make([]T, i+1, max(2*cap(s), i+1, 16))
	copy(n, s)
	return n
}

// Accept records that message seq of stream was accepted: it must arrive.
func (c *Checker) Accept(stream int, seq uint32) {
	s := &c.streams[stream]
	s.state = grow(s.state, int(seq))
	s.state[seq] = stateAccepted
	c.accepted.Add(1)
}

// Refuse records that message seq of stream was not accepted: it may or may not arrive.
func (c *Checker) Refuse(stream int, seq uint32) {
	s := &c.streams[stream]
	s.state = grow(s.state, int(seq))
	s.state[seq] = stateRefused
	c.refused.Add(1)
}

// Receive records a receipt of message seq of stream; first is false for a duplicate.
func (c *Checker) Receive(stream int, seq uint32) (first bool) {
	s := &c.streams[stream]
	s.ord = grow(s.ord, int(seq))
	if s.ord[seq] != 0 {
		c.dups.Add(1)
		return false
	}
	s.nextOrd++
	s.ord[seq] = s.nextOrd
	c.received.Add(1)
	return true
}

// Accepted is the number of messages accepted so far.
func (c *Checker) Accepted() int64 { return c.accepted.Load() }

// Received is the number of distinct messages received so far.
func (c *Checker) Received() int64 { return c.received.Load() }

// Completeness is the checker's verdict.
type Completeness struct {
	Accepted   int64 `json:"accepted"`
	Refused    int64 `json:"refused"`
	Received   int64 `json:"received"`   // distinct messages received
	Missing    int64 `json:"missing"`    // accepted, never received
	Duplicates int64 `json:"duplicates"` // receipts of a message already received
	OutOfOrder int64 `json:"out_of_order"`
	// Unexpected counts messages received that were not accepted (refused with an
	// uncertain outcome, or never recorded as sent).
	Unexpected int64    `json:"unexpected"`
	Examples   []string `json:"examples,omitempty"` // the first few problems found
}

// OK reports whether every accepted message arrived, in order.
func (v Completeness) OK() bool { return v.Missing == 0 && v.OutOfOrder == 0 }

const maxExamples = 5

// Result compares what was accepted with what arrived. An accepted message is out of order
// when it first arrived before an earlier accepted message of its stream did.
func (c *Checker) Result() Completeness {
	v := Completeness{
		Accepted: c.accepted.Load(), Refused: c.refused.Load(),
		Received: c.received.Load(), Duplicates: c.dups.Load(),
	}
	for i := range c.streams {
		c.checkStream(i, &v)
	}
	return v
}

// StreamOK reports whether every accepted message of stream arrived, in order. Like
// Result, call it once both sides have stopped.
func (c *Checker) StreamOK(stream int) bool {
	var v Completeness
	c.checkStream(stream, &v)
	return v.OK()
}

// checkStream adds stream i's missing, out-of-order and unexpected messages to v.
func (c *Checker) checkStream(i int, v *Completeness) {
	example := func(format string, args ...any) {
		if len(v.Examples) < maxExamples {
			v.Examples = append(v.Examples, fmt.Sprintf(format, args...))
		}
	}
	s := &c.streams[i]
	var maxOrd uint32
	var maxSeq int
	for seq := 0; seq < max(len(s.state), len(s.ord)); seq++ {
		var st uint8
		var ord uint32
		if seq < len(s.state) {
			st = s.state[seq]
		}
		if seq < len(s.ord) {
			ord = s.ord[seq]
		}
		switch {
		case st == stateAccepted && ord == 0:
			v.Missing++
			example("stream %d: message %d accepted but never received", i, seq)
		case st == stateAccepted && ord < maxOrd:
			v.OutOfOrder++
			example("stream %d: message %d arrived before message %d", i, seq, maxSeq)
		case st == stateAccepted:
			maxOrd, maxSeq = ord, seq
		case ord != 0:
			v.Unexpected++
		}
	}
}
