package node

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
)

// failNotifyStore fails the next n Notify calls (a Redis blip between the presence write
// and the notice write).
type failNotifyStore struct {
	store.Store
	fails atomic.Int32
}

func (s *failNotifyStore) Notify(ctx context.Context, node string, ns ...store.Notice) error {
	if s.fails.Add(-1) >= 0 {
		return errors.New("notify: connection reset (injected)")
	}
	return s.Store.Notify(ctx, node, ns...)
}

// TestFailedTakeoverIsRetriedOnReconnect: a client id is connected on node 1, which cannot
// be reached over the wire; it connects again on node 2, which cannot store the revoke
// notice either (one failed write), so node 2 refuses the connection. The store keeps the
// takeover pending, so when the client tries again node 2 revokes node 1's session before
// its CONNACK: the old session receives nothing after that.
func TestFailedTakeoverIsRetriedOnReconnect(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	cfg1, cfg2 := faultConfig(t, "tf-1"), faultConfig(t, "tf-2")
	for _, c := range []*Config{&cfg1, &cfg2} {
		c.Lease.Duration, c.Lease.Interval = 600*time.Millisecond, 100*time.Millisecond
	}
	cfg1.AdvertiseInternal = "127.0.0.1:1" // nobody can reach node 1 directly
	n1 := startFaultNode(t, cfg1, env.coord(t), env.store(t))
	fs := &failNotifyStore{Store: env.store(t)}
	n2 := startFaultNode(t, cfg2, env.coord(t), fs)
	faultWaitFor(t, 10*time.Second, "node 2 sees node 1 live", func() bool {
		_, ok := n2.members.Live("tf-1", n1.Member().Epoch)
		return ok
	})

	old := testenv.ConnectMQTT(t, n1.Member().MQTTAddr, "dup", testenv.MQTTOptions{CleanStart: true})

	fs.fails.Store(1)
	if cl, err := testenv.DialMQTT(n2.Member().MQTTAddr, "dup", testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 10 * time.Second}); err == nil {
		cl.Close()
		t.Fatal("the first takeover attempt was accepted; the test needs it refused")
	} else {
		t.Logf("first attempt on node 2 refused: %v", err)
	}
	// The client retries, as any client does.
	_ = testenv.ConnectMQTT(t, n2.Member().MQTTAddr, "dup", testenv.MQTTOptions{CleanStart: true})
	connack := time.Now()

	ctx := testenv.Context(t, 10*time.Second)
	if _, err := fs.Store.Append(ctx, 100, []store.Message{{
		ID: "after-takeover", To: "dup", Topic: "inbox/dup", Payload: []byte("for the new session"), QoS: 1,
		Accepted: time.Now().UTC(), TTL: time.Minute,
	}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.Done():
		return // ended: the promise holds
	case <-time.After(3 * cfg1.Lease.Duration):
	}
	st := n1.clients.get("dup")
	if err := old.Subscribe("inbox/dup", 1); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if m, err := old.Next(3 * time.Second); err == nil {
		t.Fatalf("node 1's session (revoked: %v) is still connected %v after the new session's CONNACK on node 2 "+
			"and received %q, queued after that CONNACK", st != nil && st.revoked.Load(),
			time.Since(connack).Round(time.Millisecond), m.ID)
	}
	t.Fatalf("node 1's session is still connected %v after the new session's CONNACK on node 2",
		time.Since(connack).Round(time.Millisecond))
}
