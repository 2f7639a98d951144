package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// msgReq is a POST /v1/messages body.
type msgReq struct {
	ID      string `json:"id,omitempty"`
	To      string `json:"to"`
	Topic   string `json:"topic,omitempty"`
	Payload string `json:"payload"`
	QoS     *int   `json:"qos,omitempty"`
	TTL     string `json:"ttl,omitempty"`
	MaxWait string `json:"max_wait,omitempty"`
}

// inboxClient connects id to addr and subscribes it to its inbox.
func inboxClient(t *testing.T, addr, id string) *testenv.MQTTClient {
	t.Helper()
	cl := testenv.ConnectMQTT(t, addr, id, testenv.MQTTOptions{CleanStart: true})
	if err := cl.Subscribe("inbox/"+id, 1); err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestLiveDeliveryOnEachNode: a client on each of three nodes gets its message directly.
func TestLiveDeliveryOnEachNode(t *testing.T) {
	c := newCluster(t)
	nodes := []*nodeProc{c.startNode("n1"), c.startNode("n2"), c.startNode("n3")}
	r := c.startRouter("r1")
	for _, n := range nodes {
		id := "dev-" + n.id
		cl := inboxClient(t, n.member.MQTTAddr, id)
		var res router.Result
		if code := r.send(t, msgReq{To: id, Payload: "hi " + id}, &res); code != 200 {
			t.Fatalf("send to %s: %d", id, code)
		}
		if res.Status != router.Delivered || res.Node != n.id || res.ID == "" {
			t.Fatalf("send to %s: %+v, want delivered on %s", id, res, n.id)
		}
		msg, err := cl.Next(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Topic != "inbox/"+id || string(msg.Payload) != "hi "+id || msg.ID != res.ID || msg.QoS != 1 {
			t.Fatalf("%s received %+v, want inbox message %s", id, msg, res.ID)
		}
	}
	// That a directed message reaches its client only, and not another subscriber of the
	// same topic, is in TestAuthenticationAndInboxIsolation (an ACL must let the other
	// subscriber read the topic first).
}

// TestOfflineClientGetsMailboxInOrderOnAnotherNode: messages to an offline client wait in
// its mailbox and arrive in order when it connects to a different node than before.
func TestOfflineClientGetsMailboxInOrderOnAnotherNode(t *testing.T) {
	c := newCluster(t)
	a, b := c.startNode("na"), c.startNode("nb")
	r := c.startRouter("r1")
	const id = "phone-7"
	cl := inboxClient(t, a.member.MQTTAddr, id)
	cl.Close()
	testenv.Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		var info router.Client
		getJSON(t, r.url+"/v1/clients/"+id, &info)
		if info.Online {
			return fmt.Errorf("still online: %+v", info)
		}
		return nil
	})
	const n = 50
	var ids []string
	for i := range n {
		var res router.Result
		if code := r.send(t, msgReq{To: id, Payload: fmt.Sprint(i)}, &res); code != 200 || res.Status != router.Queued {
			t.Fatalf("message %d: %d %+v, want queued", i, code, res)
		}
		ids = append(ids, res.ID)
	}
	var info router.Client
	getJSON(t, r.url+"/v1/clients/"+id, &info)
	if info.Online || info.Depth != n {
		t.Fatalf("client info %+v, want offline with %d waiting", info, n)
	}
	code, out, _ := testenv.Run(t, 10*time.Second, "mailbox", "--api", r.url, "--to", id, "--json", "--limit", "3")
	if code != 0 || !strings.Contains(out, `"depth":50`) || !strings.Contains(out, ids[0]) {
		t.Fatalf("switchboard mailbox: exit %d\n%s", code, out)
	}

	cl2 := inboxClient(t, b.member.MQTTAddr, id)
	for i := range n {
		msg, err := cl2.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d: %v", i, n, err)
		}
		if msg.ID != ids[i] || string(msg.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: got %s %q, want %s %q", i, msg.ID, msg.Payload, ids[i], fmt.Sprint(i))
		}
	}
	testenv.Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		getJSON(t, r.url+"/v1/clients/"+id, &info)
		if !info.Online || info.Node != "nb" || info.Depth != 0 {
			return fmt.Errorf("client info %+v, want online on nb with an empty mailbox", info)
		}
		return nil
	})
	// New messages now go straight to the client, after the drained ones.
	var res router.Result
	r.send(t, msgReq{To: id, Payload: "live"}, &res)
	if res.Status != router.Delivered || res.Node != "nb" {
		t.Fatalf("after the drain: %+v, want delivered on nb", res)
	}
	if msg, err := cl2.Next(5 * time.Second); err != nil || string(msg.Payload) != "live" {
		t.Fatalf("live message after drain: %+v %v", msg, err)
	}
}

// TestTakeoverAcrossNodes: the same client id connecting on node B closes its session on
// node A with 0x8E; messages then go to B only.
func TestTakeoverAcrossNodes(t *testing.T) {
	c := newCluster(t)
	a, b := c.startNode("ta"), c.startNode("tb")
	r := c.startRouter("r1")
	const id = "sensor-1"
	onA := inboxClient(t, a.member.MQTTAddr, id)
	onB := inboxClient(t, b.member.MQTTAddr, id)
	select {
	case <-onA.Disconnected():
	case <-time.After(5 * time.Second):
		t.Fatal("the session on node A was not disconnected")
	}
	if reason := onA.DisconnectReason(); reason != 0x8E {
		t.Fatalf("node A disconnected the old session with %#x, want 0x8E (session taken over)", reason)
	}
	for i := range 10 {
		var res router.Result
		r.send(t, msgReq{To: id, Payload: fmt.Sprint(i)}, &res)
		if res.Status != router.Delivered || res.Node != "tb" {
			t.Fatalf("message %d: %+v, want delivered on tb", i, res)
		}
		if msg, err := onB.Next(5 * time.Second); err != nil || string(msg.Payload) != fmt.Sprint(i) {
			t.Fatalf("B: message %d: %+v %v", i, msg, err)
		}
	}
	select {
	case m := <-onA.Messages():
		t.Fatalf("the taken-over session on A received %+v", m)
	default:
	}
}

// TestMailboxCapExpiryAndDuplicates: a full mailbox refuses new messages and keeps the old
// ones; expired messages are never delivered; a retried append is recognised by its id.
func TestMailboxCapExpiryAndDuplicates(t *testing.T) {
	c := newCluster(t)
	n := c.startNode("nm")
	r := c.startRouter("r1", "--mailbox-limit", "5")
	const id = "tablet"
	var res router.Result
	// Two short-lived messages first, then three that live.
	for i := range 2 {
		r.send(t, msgReq{To: id, Payload: fmt.Sprint("short-", i), TTL: "1s"}, &res)
		if res.Status != router.Queued {
			t.Fatalf("short %d: %+v", i, res)
		}
	}
	expiresAt := time.Now().Add(time.Second)
	for i := range 3 {
		r.send(t, msgReq{ID: fmt.Sprint("keep-", i), To: id, Payload: fmt.Sprint("keep-", i)}, &res)
		if res.Status != router.Queued || res.Depth != 3+i {
			t.Fatalf("keep %d: %+v", i, res)
		}
	}
	// Full: the sixth is refused, nothing older dropped.
	var eb router.ErrorBody
	if code := r.send(t, msgReq{To: id, Payload: "one too many"}, &eb); code != http.StatusInsufficientStorage ||
		!strings.Contains(eb.Error, "mailbox full") {
		t.Fatalf("sixth message: %d %+v, want 507 mailbox full", code, eb)
	}
	// A retry of keep-1 is a duplicate: acknowledged, not stored twice.
	r.send(t, msgReq{ID: "keep-1", To: id, Payload: "keep-1"}, &res)
	if !res.Duplicate || res.Depth != 5 {
		t.Fatalf("retry of keep-1: %+v, want duplicate at depth 5", res)
	}
	// Let the short ones expire (the condition is the passage of time itself).
	time.Sleep(time.Until(expiresAt) + 200*time.Millisecond)
	cl := inboxClient(t, n.member.MQTTAddr, id)
	for i := range 3 {
		msg, err := cl.Next(5 * time.Second)
		if err != nil || string(msg.Payload) != fmt.Sprint("keep-", i) {
			t.Fatalf("message %d: %+v %v, want keep-%d (expired ones never delivered)", i, msg, err, i)
		}
	}
	select {
	case m := <-cl.Messages():
		t.Fatalf("unexpected extra message %+v", m)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestBadRequestsStoreNothing: every malformed request gets 400 with a JSON error naming the
// field, and nothing is stored.
func TestBadRequestsStoreNothing(t *testing.T) {
	c := newCluster(t)
	c.startNode("nx")
	r := c.startRouter("r1", "--max-payload", "1024")
	const id = "victim"
	for _, tc := range []struct {
		name, body, field string
	}{
		{"missing to", `{"payload":"x"}`, "to"},
		{"invalid to", `{"to":"a/b","payload":"x"}`, "to"},
		{"wildcard topic", `{"to":"victim","topic":"a/+","payload":"x"}`, "topic"},
		{"reserved topic", `{"to":"victim","topic":"$SYS/x","payload":"x"}`, "topic"},
		{"long topic", `{"to":"victim","topic":"` + strings.Repeat("t", 1025) + `","payload":"x"}`, "topic"},
		{"payload too large", `{"to":"victim","payload":"` + strings.Repeat("p", 1025) + `"}`, "payload"},
		{"qos 2", `{"to":"victim","payload":"x","qos":2}`, "qos"},
		{"qos 7", `{"to":"victim","payload":"x","qos":7}`, "qos"},
		{"bad ttl", `{"to":"victim","payload":"x","ttl":"soon"}`, "ttl"},
		{"both payloads", `{"to":"victim","payload":"x","payload_base64":"eA=="}`, "payload"},
		{"bad base64", `{"to":"victim","payload_base64":"!!"}`, "payload_base64"},
		{"unknown field", `{"to":"victim","payload":"x","priority":9}`, "priority"},
		{"malformed JSON", `{"to":"victim",`, "body"},
		{"wrong type", `{"to":5}`, "to"},
		{"trailing data", `{"to":"victim","payload":"x"} {}`, "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var eb router.ErrorBody
			code := postRaw(t, r.url+"/v1/messages", []byte(tc.body), &eb)
			if code != 400 || eb.Field != tc.field || eb.Error == "" {
				t.Fatalf("%s: %d %+v, want 400 naming field %q", tc.body[:min(len(tc.body), 60)], code, eb, tc.field)
			}
		})
	}
	// A batch with one bad item is refused whole.
	var eb router.ErrorBody
	code := postRaw(t, r.url+"/v1/messages/batch",
		[]byte(`{"messages":[{"to":"victim","payload":"ok"},{"to":"victim","qos":2,"payload":"x"}]}`), &eb)
	if code != 400 || eb.Field != "qos" || eb.Index == nil || *eb.Index != 1 {
		t.Fatalf("batch with a bad item: %d %+v, want 400 naming item 1's qos", code, eb)
	}
	var info router.Client
	getJSON(t, r.url+"/v1/clients/"+id, &info)
	if info.Depth != 0 {
		t.Fatalf("bad requests stored %d messages", info.Depth)
	}
}

// TestRedisDownRefusesWithoutLoss: with Redis stopped the router answers 503 and reports
// nothing accepted; after Redis returns, sending works and nothing accepted before is lost.
func TestRedisDownRefusesWithoutLoss(t *testing.T) {
	e := shared.Ensemble(t)
	redis := testenv.Redis(t)
	c := newClusterOn(t, e.ConnectString(), redis.Addr)
	n := c.startNode("nr")
	r := c.startRouter("r1")
	var res router.Result
	r.send(t, msgReq{To: "offline-1", Payload: "before"}, &res)
	if res.Status != router.Queued {
		t.Fatalf("before: %+v", res)
	}
	if err := redis.Stop(); err != nil {
		t.Fatal(err)
	}
	var eb router.ErrorBody
	code := r.send(t, msgReq{To: "offline-1", Payload: "during"}, &eb)
	if code != http.StatusServiceUnavailable || !strings.Contains(eb.Error, "not accepted") {
		t.Fatalf("with Redis down: %d %+v, want 503 not accepted", code, eb)
	}
	// The router's readiness says so too, naming the Redis it cannot reach.
	var hl struct {
		Ready bool   `json:"ready"`
		Store string `json:"store"`
	}
	if code := getJSON(t, r.url+"/healthz", &hl); code != http.StatusServiceUnavailable || hl.Ready || !strings.Contains(hl.Store, redis.Addr) {
		t.Fatalf("router /healthz with Redis down: %d %+v, want 503 naming %s", code, hl, redis.Addr)
	}
	ctx := t.Context()
	if err := redis.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		var res router.Result
		if code := r.send(t, msgReq{To: "offline-1", Payload: "after"}, &res); code != 200 {
			return fmt.Errorf("send after restart: %d", code)
		}
		return nil
	})
	cl := inboxClient(t, n.member.MQTTAddr, "offline-1")
	for _, want := range []string{"before", "after"} {
		if msg, err := cl.Next(10 * time.Second); err != nil || string(msg.Payload) != want {
			t.Fatalf("got %+v %v, want %q", msg, err, want)
		}
	}
}
