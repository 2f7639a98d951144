package zkcoord

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// TestProbeSentBeforeTheSessionsAnswerIsNotOverdue: a Sync still pending from before a
// request answered in the session (the ensemble answers a session's requests in order, so it
// is the expired session's, answered already, or queued after that request) counts as
// unanswered only since that request was sent; one sent after it counts from its own send.
// Without the rule, every registration and leadership in a session that replaced an expired
// one counted as unanswered until the next probe came back.
func TestProbeSentBeforeTheSessionsAnswerIsNotOverdue(t *testing.T) {
	const timeout = 6 * time.Second
	c := &Coordinator{cfg: Config{Settings: coord.Settings{SessionTimeout: timeout}}}
	c.prober = coord.NewProber(time.Time{}, c.timeout, func(ctx context.Context) (int64, bool) {
		<-ctx.Done() // never answered
		return 1, false
	})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); c.prober.Run(ctx, nil, 0) }()
	defer func() { cancel(); <-ran }()
	for {
		l, changed := c.prober.Get()
		if !l.Pending.IsZero() {
			break
		}
		select {
		case <-changed:
		case <-time.After(5 * time.Second):
			t.Fatal("the probe was not sent")
		}
	}
	sent := c.prober.Load().Pending
	overdue := coord.OverdueAfter(timeout)
	at := sent.Add(overdue + 500*time.Millisecond) // overdue by the probe's own send time
	later := &regSession{c: c, id: 2, heard: sent.Add(time.Second)}
	if st := later.Standing(at); st.Suspended {
		t.Fatalf("a session answered 1s after the pending probe was sent counts as Suspended %v later: %+v", at.Sub(sent), st)
	}
	if st := later.Standing(later.heard.Add(overdue + time.Millisecond)); !st.Suspended {
		t.Fatalf("still pending %v after the session's answered send, not Suspended: %+v", overdue, st)
	}
	before := &regSession{c: c, id: 1, heard: sent.Add(-time.Millisecond)}
	if st := before.Standing(at); !st.Suspended {
		t.Fatalf("a probe overdue in the session does not make it Suspended: %+v", st)
	}
}
