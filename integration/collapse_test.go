package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// TestCollapseAndScheduleAcrossRestart: a device leaves its node; while it is away the
// backend sends two messages under one collapse key, a plain one, and two scheduled ones
// (the later deliver_at first); the router that took them is killed with SIGKILL and
// another one starts. The device comes back on the other node and receives the plain
// message, the newest collapsed one (never the replaced one) and the scheduled ones in
// deliver_at order. Then, connected, it gets a collapse-keyed message through its
// mailbox at once. Receipts say collapsed and delivered.
func TestCollapseAndScheduleAcrossRestart(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.startNode("cs1"), c.startNode("cs2")
	r1 := c.startRouter("csr1", "--schedule-poll", "50ms")
	const dev = "cs-dev"
	first := inboxClient(t, n1.member.MQTTAddr, dev)
	first.Close()
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		var cl router.Client
		getJSON(t, r1.url+"/v1/clients/"+dev, &cl)
		if cl.Online {
			return fmt.Errorf("still online on %s", cl.Node)
		}
		return nil
	})

	now := time.Now()
	sends := []msgReq{
		{ID: "score-1", To: dev, Payload: "1-0"},
		{ID: "news", To: dev, Payload: "news"},
		{ID: "score-2", To: dev, Payload: "2-0"},
	}
	for _, m := range sends {
		body := map[string]any{"id": m.ID, "to": m.To, "payload": m.Payload}
		if m.ID != "news" {
			body["collapse_key"] = "score"
		}
		var res router.Result
		if code := r1.send(t, body, &res); code != 200 || res.Status != router.Queued {
			t.Fatalf("send %s: %d %+v", m.ID, code, res)
		}
		if m.ID == "score-2" && res.Collapsed != "score-1" {
			t.Fatalf("score-2 replaced %q, want score-1", res.Collapsed)
		}
	}
	for _, s := range []struct {
		id string
		in time.Duration
	}{{"later", 3 * time.Second}, {"sooner", 2 * time.Second}} {
		var res router.Result
		body := map[string]any{"id": s.id, "to": dev, "payload": s.id, "deliver_at": now.Add(s.in).UTC().Format(time.RFC3339Nano)}
		if code := r1.send(t, body, &res); code != 200 || res.Status != router.Scheduled {
			t.Fatalf("schedule %s: %d %+v", s.id, code, res)
		}
	}
	r1.Kill()
	r2 := c.startRouter("csr2", "--schedule-poll", "50ms")

	// The scheduled ones reach the mailbox when due, through the new router.
	testenv.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		var cl router.Client
		getJSON(t, r2.url+"/v1/clients/"+dev, &cl)
		if cl.Depth != 4 {
			return fmt.Errorf("mailbox depth %d, want 4", cl.Depth)
		}
		return nil
	})
	cl := inboxClient(t, n2.member.MQTTAddr, dev)
	defer cl.Close()
	var got []string
	for _, want := range []string{"news", "score-2", "sooner", "later"} {
		m, err := cl.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, m.ID)
		if m.ID != want {
			t.Fatalf("received %v, want news, score-2, sooner, later (never score-1)", got)
		}
	}

	// Connected: a collapse-keyed message goes through the mailbox and arrives at once. (It
	// is sent once score-2's receipt is recorded: until its node has recorded the
	// acknowledgement, score-2 is still queued, and a newer score would replace it.)
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		var st struct {
			State string `json:"state"`
		}
		getJSON(t, r2.url+"/v1/messages/score-2?to="+dev, &st)
		if st.State != "delivered" {
			return fmt.Errorf("score-2: state %q", st.State)
		}
		return nil
	})
	var res router.Result
	if code := r2.send(t, map[string]any{"id": "score-3", "to": dev, "payload": "3-0", "collapse_key": "score"}, &res); code != 200 {
		t.Fatalf("send score-3: %d %+v", code, res)
	}
	if m, err := cl.Next(10 * time.Second); err != nil || m.ID != "score-3" {
		t.Fatalf("score-3 while connected: %+v, %v", m, err)
	}

	states := map[string]string{"score-1": "collapsed", "news": "delivered", "score-2": "delivered", "sooner": "delivered", "later": "delivered", "score-3": "delivered"}
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		for id, want := range states {
			var st struct {
				State string `json:"state"`
			}
			getJSON(t, r2.url+"/v1/messages/"+id+"?to="+dev, &st)
			if st.State != want {
				return fmt.Errorf("%s: state %q, want %q", id, st.State, want)
			}
		}
		return nil
	})
}

// TestPriorityAcrossRestart: a device is away while five normal messages and then two
// high-priority ones are queued for it, and the router that took them is killed and
// another started; the device comes back on another node, its node killed meanwhile, and
// receives the high-priority ones first, then the normal ones, each lane in the order
// accepted. A high-priority message to it while it is connected arrives too.
func TestPriorityAcrossRestart(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.startNode("pr1"), c.startNode("pr2")
	r1 := c.startRouter("prr1")
	const dev = "pr-dev"
	first := inboxClient(t, n1.member.MQTTAddr, dev)
	first.Drop() // gone without DISCONNECT
	n1.Kill()
	testenv.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		var cl router.Client
		getJSON(t, r1.url+"/v1/clients/"+dev, &cl)
		if cl.Online {
			return fmt.Errorf("still online on %s", cl.Node)
		}
		return nil
	})
	var want []string
	for i := range 5 {
		id := fmt.Sprintf("n%d", i)
		if code := r1.send(t, map[string]any{"id": id, "to": dev, "payload": id}, nil); code != 200 {
			t.Fatalf("send %s: %d", id, code)
		}
	}
	for i := range 2 {
		id := fmt.Sprintf("h%d", i)
		var res router.Result
		if code := r1.send(t, map[string]any{"id": id, "to": dev, "payload": id, "priority": "high"}, &res); code != 200 || res.Status != router.Queued {
			t.Fatalf("send %s: %d %+v", id, code, res)
		}
		want = append(want, id)
	}
	for i := range 5 {
		want = append(want, fmt.Sprintf("n%d", i))
	}
	r1.Kill()
	r2 := c.startRouter("prr2")

	cl := inboxClient(t, n2.member.MQTTAddr, dev)
	defer cl.Close()
	var got []string
	for range want {
		m, err := cl.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, m.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("received %v, want %v", got, want)
	}
	var res router.Result
	if code := r2.send(t, map[string]any{"id": "h2", "to": dev, "payload": "h2", "priority": "high"}, &res); code != 200 {
		t.Fatalf("send h2: %d %+v", code, res)
	}
	if m, err := cl.Next(10 * time.Second); err != nil || m.ID != "h2" {
		t.Fatalf("h2 while connected: %+v, %v", m, err)
	}
}
