package node

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// TestQueuedBytesBoundMemory: messages to a client that never subscribes to its inbox are
// answered queued after their max wait and then leave the node's memory (the mailbox holds
// them), so the node holds no more than its MaxQueuedBytes of them however many arrive.
func TestQueuedBytesBoundMemory(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	cfg := faultConfig(t, "mem-1")
	cfg.MaxQueuedBytes = 1 << 20 // 1 MiB
	n := startFaultNode(t, cfg, env.coord(t), env.store(t))
	const id = "never-subscribes"
	_ = testenv.ConnectMQTT(t, n.Member().MQTTAddr, id, testenv.MQTTOptions{CleanStart: true})
	var st *clientState
	faultWaitFor(t, 5*time.Second, "client connected", func() bool { st = n.clients.get(id); return st != nil })
	payload := bytes.Repeat([]byte("x"), 256<<10) // 256 KiB
	var answered atomic.Int32
	const sends = 16 // 4 MiB, four times the budget
	for i := range sends {
		if !n.accept(st, wire.Deliver{Epoch: n.epoch.Load(), Client: id, Session: st.session, MaxWait: 20,
			Msgs: []wire.Msg{{ID: fmt.Sprint("big-", i), Topic: "inbox/" + id, Payload: payload, QoS: 1, TTL: 60_000}}},
			func(int, wire.Result) { answered.Add(1) }) {
			t.Fatalf("message %d refused", i)
		}
		faultWaitFor(t, 5*time.Second, "answered queued", func() bool { return answered.Load() == int32(i+1) })
	}
	st.ob.mu.Lock()
	held := 0
	for _, e := range st.ob.directQ {
		held += len(e.payload)
	}
	st.ob.mu.Unlock()
	if held > int(cfg.MaxQueuedBytes) {
		t.Fatalf("the outbox holds %d KiB of payloads (node budget %d KiB, counted now: %d bytes)",
			held>>10, cfg.MaxQueuedBytes>>10, n.queuedBytes.Load())
	}
}
