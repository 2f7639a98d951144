package redisstore_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store/redisstore"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// saddGate holds any round trip carrying an SADD with member until released.
type saddGate struct {
	member  string
	once    sync.Once
	held    chan struct{}
	release chan struct{}
}

func (g *saddGate) check(cmds []redis.Cmder) {
	for _, c := range cmds {
		a := c.Args()
		if len(a) > 2 && a[0] == "sadd" && slices.Contains(a[2:], any(g.member)) {
			first := false
			g.once.Do(func() { first = true })
			if first {
				close(g.held)
				<-g.release
			}
			return
		}
	}
}
func (g *saddGate) DialHook(next redis.DialHook) redis.DialHook { return next }
func (g *saddGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { g.check([]redis.Cmder{cmd}); return next(ctx, cmd) }
}
func (g *saddGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { g.check(cmds); return next(ctx, cmds) }
}

// TestFailedConnectIsNotWrittenLater: a Connect whose caller's deadline passes while its
// batch (kept alive by a more patient caller) is in its index phase is reported failed; the
// caller's compensating Disconnect (as node/hook.go makes) runs at once in the Disconnect
// queue and clears nothing. The batch must not write that presence afterwards: it would name
// a session that does not exist, on a node whose audit never looks at it.
func TestFailedConnectIsNotWrittenLater(t *testing.T) {
	s := open(t, testConfig(t, shared.Redis(t).Addr))
	ctx, cancel := testContext(t, 20*time.Second)
	defer cancel()
	rt := &roundTrips{hold: make(chan struct{}), held: make(chan struct{})}
	redisstore.AddHook(s, rt)
	gate := &saddGate{member: "ca", held: make(chan struct{}), release: make(chan struct{})}
	redisstore.AddHook(s, gate)

	first := make(chan error, 1)
	go func() { _, err := s.Connect(ctx, storetest.NewPresence("first", "n1", 1)); first <- err }()
	<-rt.held

	pa := storetest.NewPresence("ca", "n1", 1)
	aErr := make(chan error, 1)
	go func() {
		actx, acancel := context.WithTimeout(ctx, 400*time.Millisecond)
		defer acancel()
		_, err := s.Connect(actx, pa)
		aErr <- err
	}()
	bErr := make(chan error, 1)
	go func() { _, err := s.Connect(ctx, storetest.NewPresence("cb", "n1", 1)); bErr <- err }()
	for redisstore.WaitingConnects(s) != 2 {
		time.Sleep(time.Millisecond)
	}
	close(rt.hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-gate.held // the batch of A and B is in its index phase
	err := <-aErr
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("A: %v", err)
	}
	// What node/hook.go does after a failed Connect.
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	cleared, derr := s.Disconnect(dctx, pa.Client, pa.Session)
	dcancel()
	if derr != nil {
		t.Fatal(derr)
	}
	_ = cleared // nothing to clear yet, or the presence: either is right
	close(gate.release)
	if err := <-bErr; err != nil {
		t.Fatal(err)
	}
	p, _, err := s.Lookup(ctx, "ca")
	if err != nil {
		t.Fatal(err)
	}
	if p.Session == pa.Session {
		t.Errorf("presence of the Connect its caller was told had failed, after its compensating Disconnect: %+v (stranded)", p)
	}
}
