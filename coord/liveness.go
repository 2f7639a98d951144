package coord

import "time"

// Liveness is what a backend knows about one session (ZooKeeper) or lease (etcd) from its own
// requests: the send time of the latest one the backend answered, and of the oldest one still
// unanswered. By the rule in State's doc, the backend cannot end the session before Heard
// plus its timeout T.
type Liveness struct {
	Heard   time.Time // send time of the latest answered request; the session lives until Heard + T at least
	Pending time.Time // send time of the oldest unanswered request; zero if none
}

// ProbeInterval is how often a backend asks to keep Heard fresh: six times a T, so that an
// overdue answer (OverdueAfter) is noticed with two intervals still in hand, and a healthy
// Heard is never older than a sixth of T plus a round trip.
func ProbeInterval(t time.Duration) time.Duration { return t / 6 }

// OverdueAfter is how long a request may go unanswered before the session counts as
// Suspended: far longer than a round trip on a healthy link, well before the fence.
func OverdueAfter(t time.Duration) time.Duration { return t / 3 }

// StaleAfter is how old Heard may get before the session counts as Suspended even without an
// overdue request (a prober that cannot get its requests out).
func StaleAfter(t time.Duration) time.Duration { return t / 2 }

// Judge says what l means at now for a backend timeout t: whether the session counts as
// Suspended (a request unanswered for OverdueAfter(t), or nothing answered for
// StaleAfter(t)), when its holder must fence itself (Heard + FenceAfter(t)), and when either
// changes by itself if nothing more is heard.
func (l Liveness) Judge(now time.Time, t time.Duration) (suspended bool, fenceAt, next time.Time) {
	fenceAt = l.Heard.Add(FenceAfter(t))
	next = fenceAt
	if stale := l.Heard.Add(StaleAfter(t)); !now.Before(stale) {
		suspended = true
	} else if stale.Before(next) {
		next = stale
	}
	if !l.Pending.IsZero() {
		if overdue := l.Pending.Add(OverdueAfter(t)); now.After(overdue) {
			suspended = true
		} else if overdue.Before(next) {
			// Just past the instant, so that the wake-up finds the request overdue.
			next = overdue.Add(time.Millisecond)
		}
	}
	return suspended, fenceAt, next
}
