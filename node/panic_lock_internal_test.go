package node

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
)

// panicConnectStore panics in one Connect of client (once armed): any panic between
// lockConnect and OnSessionEstablished (an auth plugin, the store client, mochi's session
// inheritance) stands for it.
type panicConnectStore struct {
	store.Store
	client string
	armed  atomic.Bool
}

func (s *panicConnectStore) Connect(ctx context.Context, p store.Presence) (store.ConnectResult, error) {
	if p.Client == s.client && s.armed.CompareAndSwap(true, false) {
		panic("review2: panic while handling a CONNECT")
	}
	return s.Store.Connect(ctx, p)
}

// TestPanicInConnectReleasesTheConnectLock: a panic while a CONNECT is handled (an auth
// plugin, the store client, mochi's session inheritance) ends that connection only. The
// listener's recovery must release the per-client-id CONNECT lock OnConnect took, or every
// later CONNECT of that id on the node would hang, and so would the node's Close (mochi's
// Close waits for every connection's goroutine).
func TestPanicInConnectReleasesTheConnectLock(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	ps := &panicConnectStore{Store: env.store(t), client: "wedged"}
	n := startFaultNode(t, faultConfig(t, "pl-1"), env.coord(t), ps)
	// Runs before the node's Close, which otherwise hangs for ever: mochi's Close waits for
	// every connection's goroutine, and one is blocked on the leaked lock.
	t.Cleanup(func() {
		for range 2 {
			n.connMu.Lock()
			var unlocks []func()
			for _, u := range n.connecting {
				unlocks = append(unlocks, u.unlock)
			}
			n.connMu.Unlock()
			for _, u := range unlocks {
				u()
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	ps.armed.Store(true)
	if c, err := testenv.DialMQTT(n.Member().MQTTAddr, "wedged", testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 2 * time.Second}); err == nil {
		c.Close()
		t.Fatal("the panicking CONNECT was accepted")
	}
	_ = testenv.ConnectMQTT(t, n.Member().MQTTAddr, "other", testenv.MQTTOptions{CleanStart: true}) // the node still works
	c, err := testenv.DialMQTT(n.Member().MQTTAddr, "wedged", testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 3 * time.Second})
	if err != nil {
		n.connMu.Lock()
		held := len(n.connecting)
		n.connMu.Unlock()
		t.Fatalf("a CONNECT of the same id after the recovered panic: %v (CONNECT locks still held: %d)", err, held)
	}
	c.Close()
}
