package zkcoord

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// TestProbeSentBeforeTheSessionsAnswerIsNotOverdue: a Sync still pending from before a
// request answered in the session (the ensemble answers a session's requests in order, so it
// is the expired session's, or answered already) does not make the session Suspended; one
// sent after does, once overdue. Without the rule, every registration and leadership in a
// session that replaced an expired one counted as unanswered until the next probe came back.
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
	at := sent.Add(coord.OverdueAfter(timeout) + 500*time.Millisecond) // overdue, not yet stale
	after := &regSession{c: c, id: 2, heard: sent.Add(time.Millisecond)}
	if st := after.Standing(at); st.Suspended {
		t.Fatalf("a session answered after the pending probe was sent counts as Suspended: %+v", st)
	}
	before := &regSession{c: c, id: 1, heard: sent.Add(-time.Millisecond)}
	if st := before.Standing(at); !st.Suspended {
		t.Fatalf("a probe overdue in the session does not make it Suspended: %+v", st)
	}
}
