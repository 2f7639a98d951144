package router_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

func mailboxOf(t *testing.T, f fixture, client string) []string {
	t.Helper()
	var ids []string
	for _, m := range peekAll(t, f.st, client) {
		ids = append(ids, m.ID)
	}
	return ids
}

// TestCollapseKey: a queued message with a collapse key is replaced by the next one with
// the same key, which answers the id it replaced; the replaced one's receipt is collapsed.
func TestCollapseKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for i, body := range []string{
		`{"to":"ck-1","id":"s1","payload":"1-0","collapse_key":"score"}`,
		`{"to":"ck-1","id":"n1","payload":"news"}`,
		`{"to":"ck-1","id":"s2","payload":"2-0","collapse_key":"score"}`,
		`{"to":"ck-1","id":"s3","payload":"3-0","collapse_key":"score"}`,
	} {
		var res router.Result
		if code := call(t, f.h, "POST", "/v1/messages", body, &res); code != 200 || res.Status != router.Queued {
			t.Fatalf("send %d: %d %+v", i, code, res)
		}
		if want := map[int]string{2: "s1", 3: "s2"}[i]; res.Collapsed != want {
			t.Fatalf("send %d: collapsed %q, want %q", i, res.Collapsed, want)
		}
	}
	if got := mailboxOf(t, f, "ck-1"); !slices.Equal(got, []string{"n1", "s3"}) {
		t.Fatalf("mailbox %v, want [n1 s3]", got)
	}
	for _, id := range []string{"s1", "s2"} {
		var st struct {
			State  string `json:"state"`
			Detail string `json:"detail"`
		}
		if code := call(t, f.h, "GET", "/v1/messages/"+id+"?to=ck-1", "", &st); code != 200 || st.State != "collapsed" {
			t.Fatalf("state of %s: %d %+v, want collapsed", id, code, st)
		}
	}
	var e router.ErrorBody
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"ck-1","payload":"x","collapse_key":"a\u0001b"}`, &e); code != 400 || e.Field != "collapse_key" {
		t.Fatalf("a control character in the key: %d %+v", code, e)
	}
}

// TestCollapseKeyLimit: a client's mailbox holds at most --max-collapse-keys keys; a new
// key past them is refused with 507 and its receipt says rejected.
func TestCollapseKeyLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *router.Config) { c.MaxCollapseKeys = 2 })
	for i := range 2 {
		body := fmt.Sprintf(`{"to":"ck-2","id":"k%d","payload":"x","collapse_key":"key-%d"}`, i, i)
		if code := call(t, f.h, "POST", "/v1/messages", body, nil); code != 200 {
			t.Fatalf("key %d: %d", i, code)
		}
	}
	var e router.ErrorBody
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"ck-2","id":"k2","payload":"x","collapse_key":"key-2"}`, &e); code != 507 {
		t.Fatalf("a third key: %d %+v, want 507", code, e)
	}
	var st struct {
		State string `json:"state"`
	}
	if code := call(t, f.h, "GET", "/v1/messages/k2?to=ck-2", "", &st); code != 200 || st.State != "rejected" {
		t.Fatalf("state of the refused message: %d %+v", code, st)
	}
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"ck-2","id":"k3","payload":"x","collapse_key":"key-1"}`, nil); code != 200 {
		t.Fatalf("a known key at the limit: %d", code)
	}
}

// TestDeliverAt: a message with deliver_at waits in the schedule and reaches the mailbox
// when it comes due, in deliver_at order; a deliver_at at or past the ttl is refused.
func TestDeliverAt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *router.Config) { c.SchedulePoll = 20 * time.Millisecond })
	now := time.Now()
	late := now.Add(400 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	early := now.Add(200 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	for _, tc := range []struct{ id, at string }{{"late", late}, {"early", early}} {
		var res router.Result
		body := fmt.Sprintf(`{"to":"da-1","id":%q,"payload":"x","deliver_at":%q,"ttl":"1h"}`, tc.id, tc.at)
		if code := call(t, f.h, "POST", "/v1/messages", body, &res); code != 200 || res.Status != router.Scheduled || res.DeliverAt.IsZero() {
			t.Fatalf("schedule %s: %d %+v", tc.id, code, res)
		}
	}
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"da-1","id":"now","payload":"x"}`, nil); code != 200 {
		t.Fatalf("send now: %d", code)
	}
	if got := mailboxOf(t, f, "da-1"); !slices.Equal(got, []string{"now"}) {
		t.Fatalf("mailbox before anything is due: %v", got)
	}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := mailboxOf(t, f, "da-1"); !slices.Equal(got, []string{"now", "early", "late"}) {
			return fmt.Errorf("mailbox %v", got)
		}
		return nil
	})
	for _, m := range peekAll(t, f.st, "da-1")[1:] {
		if m.TTL > time.Hour || m.TTL < 50*time.Minute {
			t.Fatalf("%s has %v left; want most of its hour", m.ID, m.TTL)
		}
	}
	var e router.ErrorBody
	far := now.Add(2 * time.Hour).UTC().Format(time.RFC3339)
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"da-1","payload":"x","ttl":"1h","deliver_at":"`+far+`"}`, &e); code != 400 || e.Field != "deliver_at" {
		t.Fatalf("deliver_at past the ttl: %d %+v", code, e)
	}
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"da-1","payload":"x","deliver_at":"tomorrow"}`, &e); code != 400 || e.Field != "deliver_at" {
		t.Fatalf("a bad deliver_at: %d %+v", code, e)
	}
}

// TestPriorityLane: a high-priority message goes to the mailbox's high lane, a normal one
// to the normal lane; the listing covers both lanes, a page at a time; a priority that is
// neither is refused.
func TestPriorityLane(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, body := range []string{
		`{"to":"pl-1","id":"n0","payload":"x"}`,
		`{"to":"pl-1","id":"h0","payload":"x","priority":"high"}`,
		`{"to":"pl-1","id":"n1","payload":"x","priority":"normal"}`,
		`{"to":"pl-1","id":"h1","payload":"x","priority":"high"}`,
	} {
		var res router.Result
		if code := call(t, f.h, "POST", "/v1/messages", body, &res); code != 200 || res.Status != router.Queued {
			t.Fatalf("%s: %d %+v", body, code, res)
		}
	}
	if got := mailboxOf(t, f, "pl-1"); !slices.Equal(got, []string{"n0", "n1"}) {
		t.Fatalf("normal lane %v", got)
	}
	high, err := f.st.PeekHigh(testenv.Context(t, 5*time.Second), "pl-1", 0, 10)
	if err != nil || len(high) != 2 || high[0].ID != "h0" || high[1].ID != "h1" {
		t.Fatalf("high lane %v, %v", high, err)
	}
	var got []string
	after := ""
	for {
		var v router.MailboxView
		path := "/v1/clients/pl-1/mailbox?limit=1"
		if after != "" {
			path += "&after=" + after
		}
		if code := call(t, f.h, "GET", path, "", &v); code != 200 || v.Depth != 4 {
			t.Fatalf("GET %s: %d %+v", path, code, v)
		}
		for _, m := range v.Messages {
			got = append(got, m.ID)
		}
		if v.Next == "" {
			break
		}
		after = v.Next
	}
	if !slices.Equal(got, []string{"n0", "n1", "h0", "h1"}) {
		t.Fatalf("listing %v, want the normal lane then the high lane", got)
	}
	var e router.ErrorBody
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"pl-1","payload":"x","priority":"urgent"}`, &e); code != 400 || e.Field != "priority" {
		t.Fatalf("priority urgent: %d %+v", code, e)
	}
}
