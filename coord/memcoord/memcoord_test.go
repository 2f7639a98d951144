package memcoord_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// open returns an opener of clients on one fresh cluster, closed when the test ends.
func open(t *testing.T) func() *memcoord.Coordinator {
	cl := memcoord.NewCluster()
	return func() *memcoord.Coordinator {
		c := cl.Open(memcoord.Config{SessionTimeout: time.Second, Logger: testenv.Logger(t)})
		t.Cleanup(func() { c.Close() })
		return c
	}
}

func TestBehaviour(t *testing.T) {
	coordtest.Run(t, func(t *testing.T) func() coord.Coordinator {
		o := open(t)
		return func() coord.Coordinator { return o() }
	})
}

// TestExpiredSessionFencesThenReRegisters: the one fault the in-memory backend has. The
// registration is fenced at once and comes back under a new epoch; the leadership ends.
func TestExpiredSessionFencesThenReRegisters(t *testing.T) {
	ctx := testenv.Context(t, 10*time.Second)
	o := open(t)
	c, watcher := o(), o()
	reg, err := c.Register(ctx, coordtest.NewMember("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	st0, _ := reg.Status()
	lead, err := c.Campaign(ctx, "monitor", "mon-1")
	if err != nil {
		t.Fatal(err)
	}
	watch, err := watcher.WatchMembers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	coordtest.WaitMembers(t, watch, time.Second, "node-1 registered", func(ms []coord.Member) bool { return len(ms) == 1 })

	c.ExpireSession()
	select {
	case <-lead.Done():
	case <-time.After(time.Second):
		t.Fatal("leadership not lost with its session")
	}
	st := coordtest.WaitStatus(t, reg, time.Second, "registered again", func(s coord.Status) bool {
		return s.State == coord.Registered && s.Epoch != st0.Epoch
	})
	coordtest.WaitMembers(t, watch, time.Second, "node-1 under its new epoch", func(ms []coord.Member) bool {
		return len(ms) == 1 && ms[0].Epoch == st.Epoch
	})
}
