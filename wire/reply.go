package wire

import (
	"sync/atomic"
)

// delivery is what a Deliver's reply function closes over: which of its messages have been
// answered. reply may be called from any goroutine, so the record is a bitmap of atomic
// words; the first answer for a message wins and later ones are dropped.
type delivery struct {
	sc       *serverConn
	seq      uint64 // the Deliver's Seq; message i is answered as seq+i
	n        int
	answered []atomic.Uint64
	small    [1]atomic.Uint64 // answered's storage for up to 64 messages
	panicked atomic.Bool      // the handler panicked; its leftover replies are expected
	misused  atomic.Bool      // a bad reply call has been logged
}

func newDelivery(sc *serverConn, seq uint64, n int) *delivery {
	dl := &delivery{sc: sc, seq: seq, n: n}
	if n <= 64 {
		dl.answered = dl.small[:]
	} else {
		dl.answered = make([]atomic.Uint64, (n+63)/64)
	}
	return dl
}

// claim marks message i answered and reports whether it was not yet.
func (dl *delivery) claim(i int) bool {
	bit := uint64(1) << (i % 64)
	return dl.answered[i/64].Or(bit)&bit == 0
}

// reply is the function the Handler gets. It never blocks.
func (dl *delivery) reply(i int, r Result) {
	if i < 0 || i >= dl.n {
		dl.misuse("wire handler replied for a message the delivery does not have", i)
		return
	}
	if !dl.claim(i) {
		dl.misuse("wire handler replied twice for a message; the reply is ignored", i)
		return
	}
	r = dl.sc.checkStatus(typeDeliver, dl.seq+uint64(i), r)
	r.Seq = dl.seq + uint64(i)
	// The message was counted in load when the Deliver arrived: it now waits in the queue.
	dl.sc.enqueue(outFrame{r: r}, false)
}

// misuse logs a bad reply call, once per Deliver so that a handler bug repeated for every
// message does not flood the log. After a panic, replies from goroutines the handler had
// started are expected and not logged.
func (dl *delivery) misuse(msg string, i int) {
	if dl.panicked.Load() || dl.misused.Swap(true) {
		return
	}
	dl.sc.log.Error(msg, "seq", dl.seq, "index", i, "msgs", dl.n)
}

// failUnanswered answers every message not answered yet with StatusFailed, after the
// handler panicked.
func (dl *delivery) failUnanswered(detail string) {
	dl.panicked.Store(true)
	for i := range dl.n {
		if dl.claim(i) {
			dl.sc.enqueue(outFrame{r: Result{Seq: dl.seq + uint64(i), Status: StatusFailed, Detail: detail}}, false)
		}
	}
}
