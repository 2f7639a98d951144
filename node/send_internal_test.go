package node

import (
	"testing"
)

// TestWakeIdleStartsNoSender: a wake with nothing queued and no mailbox read owed (the
// PUBACK of a client with nothing more to get, most of them under load) starts no sender;
// one with something queued does.
func TestWakeIdleStartsNoSender(t *testing.T) {
	n := &Node{}
	st := newClientState("c1", nil, "s1")
	o := st.ob
	o.readGen = o.askGen // the mailbox has been read

	n.wake(st)
	o.mu.Lock()
	sending := o.sending
	o.mu.Unlock()
	if sending {
		t.Fatal("wake started a sender for an outbox with nothing to do")
	}

	for _, tc := range []struct {
		name string
		set  func()
	}{
		{"a direct message queued", func() { o.directQ = []*entry{{id: "m1"}} }},
		{"a mailbox read owed", func() { o.askGen++ }},
	} {
		o.mu.Lock()
		o.directQ, o.readGen = nil, o.askGen
		tc.set()
		o.mu.Unlock()
		n.wake(st)
		o.mu.Lock()
		idle := o.idle()
		o.mu.Unlock()
		if idle {
			t.Fatalf("%s: the outbox reports idle", tc.name)
		}
		// The sender it started finds the node not live and exits.
		n.sendWG.Wait()
		o.mu.Lock()
		sending = o.sending
		o.mu.Unlock()
		if sending {
			t.Fatalf("%s: the sender did not exit", tc.name)
		}
	}
}
