package coord_test

import (
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
)

func TestLivenessJudge(t *testing.T) {
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
	} {
		s, f, n := c.l.Judge(c.now, T)
		if s != c.suspended || !f.Equal(c.fenceAt) || !n.Equal(c.next) {
			t.Errorf("%s: Judge = (%v, +%v, +%v), want (%v, +%v, +%v)", c.name,
				s, f.Sub(h), n.Sub(h), c.suspended, c.fenceAt.Sub(h), c.next.Sub(h))
		}
	}
	if got := coord.FenceAfter(T); got != 5400*ms {
		t.Errorf("FenceAfter(%v) = %v, want 90%%", T, got)
	}
}
