package coord_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
)

func TestLivenessStanding(t *testing.T) {
	const T = 6 * time.Second
	h := time.Unix(1000, 0) // the last answered send
	ms := time.Millisecond
	for _, c := range []struct {
		name          string
		l             coord.Liveness
		now           time.Time
		suspended     bool
		fenceAt, next time.Time
	}{
		{"fresh, nothing pending: next is when it goes stale", coord.Liveness{Heard: h}, h.Add(time.Second),
			false, h.Add(5400 * ms), h.Add(3 * time.Second)},
		{"stale: suspended, next is the fence", coord.Liveness{Heard: h}, h.Add(3 * time.Second),
			true, h.Add(5400 * ms), h.Add(5400 * ms)},
		{"pending, not overdue yet: next just past overdue", coord.Liveness{Heard: h, Pending: h.Add(500 * ms)}, h.Add(time.Second),
			false, h.Add(5400 * ms), h.Add(2500*ms + ms)},
		{"pending, overdue after stale: next is stale", coord.Liveness{Heard: h, Pending: h.Add(time.Second)}, h.Add(2 * time.Second),
			false, h.Add(5400 * ms), h.Add(3 * time.Second)},
		{"pending and overdue", coord.Liveness{Heard: h, Pending: h.Add(time.Second)}, h.Add(3*time.Second + ms),
			true, h.Add(5400 * ms), h.Add(5400 * ms)},
		{"pending, overdue only at the instant: not yet", coord.Liveness{Heard: h, Pending: h.Add(500 * ms)}, h.Add(2500 * ms),
			false, h.Add(5400 * ms), h.Add(2500*ms + ms)},
		{"lost: carried through, the times as ever", coord.Liveness{Heard: h, Lost: true}, h.Add(time.Second),
			false, h.Add(5400 * ms), h.Add(3 * time.Second)},
	} {
		st := c.l.Standing(c.now, T)
		s, f, n := st.Suspended, st.FenceAt, st.Next
		if s != c.suspended || !f.Equal(c.fenceAt) || !n.Equal(c.next) || !st.Heard.Equal(h) || st.Lost != c.l.Lost {
			t.Errorf("%s: Standing = (suspended %v, fence +%v, next +%v, heard +%v, lost %v), want (%v, +%v, +%v, +0s, %v)", c.name,
				s, f.Sub(h), n.Sub(h), st.Heard.Sub(h), st.Lost, c.suspended, c.fenceAt.Sub(h), c.next.Sub(h), c.l.Lost)
		}
	}
	if got := coord.FenceAfter(T); got != 5400*ms {
		t.Errorf("FenceAfter(%v) = %v, want 90%%", T, got)
	}
}

// probeCall is one request of a fake probe: the test answers it.
type probeCall struct {
	at    time.Time // when the prober called the probe
	reply chan probeReply
}

type probeReply struct {
	session int64
	counts  bool
}

// fakeProbe returns a probe that hands every call to the test and waits for its answer.
func fakeProbe() (func(context.Context) (int64, bool), chan probeCall) {
	calls := make(chan probeCall)
	return func(ctx context.Context) (int64, bool) {
		c := probeCall{at: time.Now(), reply: make(chan probeReply)}
		select {
		case calls <- c:
		case <-ctx.Done():
			return 0, false
		}
		select {
		case r := <-c.reply:
			return r.session, r.counts
		case <-ctx.Done():
			return 0, false
		}
	}, calls
}

func nextCall(t *testing.T, calls chan probeCall) probeCall {
	t.Helper()
	select {
	case c := <-calls:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no probe within 5s")
		return probeCall{}
	}
}

func TestProber(t *testing.T) {
	const T = 3 * time.Second
	interval := coord.ProbeInterval(T)
	probe, calls := fakeProbe()
	seed := time.Now().Add(-time.Second)
	p := coord.NewProber(seed, func() time.Duration { return T }, probe)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx, nil, 0) }()
	t.Cleanup(func() { cancel(); <-done })

	// While the first probe is unanswered, it is pending since its send; Heard is the seed.
	c1 := nextCall(t, calls)
	l := p.Load()
	if l.Pending.IsZero() || l.Pending.After(c1.at) || !l.Heard.Equal(seed) {
		t.Fatalf("first probe unanswered: record %+v, want Pending at its send (before %v), Heard the seed %v", l, c1.at, seed)
	}
	sent1 := l.Pending

	// Answered, and counted, after most of an interval: Heard is its send time, not the
	// answer's; nothing is pending.
	time.Sleep(interval * 4 / 5)
	answered := time.Now()
	c1.reply <- probeReply{session: 7, counts: true}
	c2 := nextCall(t, calls)
	if gap := c2.at.Sub(sent1); gap < interval || !c2.at.Before(answered.Add(interval)) {
		t.Errorf("second probe %v after the first was sent and %v after its answer, want an interval (%v) after the send",
			gap, c2.at.Sub(answered), interval)
	}
	l = p.Load()
	if !l.Heard.Equal(sent1) || l.Session != 7 {
		t.Errorf("after a counted answer: Heard %v in session %d, want the send time %v in session 7", l.Heard, l.Session, sent1)
	}
	sent2 := l.Pending
	if !sent2.After(sent1) {
		t.Fatalf("second probe pending since %v, want after the first's send %v", sent2, sent1)
	}

	// An answer that does not count leaves Heard alone and the probe pending; one that took
	// longer than an interval is followed at once.
	time.Sleep(interval + interval/5)
	answered = time.Now()
	c2.reply <- probeReply{session: 7, counts: false}
	c3 := nextCall(t, calls)
	if gap := c3.at.Sub(answered); gap >= interval/2 {
		t.Errorf("third probe %v after a late answer, want at once", gap)
	}
	l = p.Load()
	if !l.Heard.Equal(sent1) || !l.Pending.Equal(sent2) {
		t.Errorf("after an answer that does not count: record %+v, want Heard %v and Pending %v (the oldest unanswered)", l, sent1, sent2)
	}

	// Counted in another session: Heard starts afresh there.
	c3.reply <- probeReply{session: 8, counts: true}
	c4 := nextCall(t, calls)
	if l = p.Load(); l.Session != 8 || !l.Heard.After(sent2) || l.Heard.After(c3.at) {
		t.Errorf("after an answer in session 8: record %+v, want Heard at the third probe's send", l)
	}

	// Lose ends the probe in flight and Run; the record says Lost.
	p.Lose()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Lose")
	}
	select {
	case c4.reply <- probeReply{}:
		t.Error("the probe in flight was still waiting after Lose")
	default:
	}
	select {
	case <-p.Lost():
	default:
		t.Error("Lost not closed after Lose")
	}
	if !p.Load().Lost || !p.Load().Heard.Equal(l.Heard) {
		t.Errorf("record after Lose: %+v, want Lost with Heard unchanged", p.Load())
	}
}
