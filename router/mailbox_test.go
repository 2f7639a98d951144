package router_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// queueN queues n messages to an offline client, on topics t/a and t/b in turn.
func queueN(t *testing.T, h http.Handler, client string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%02d", client, i)
		topic := []string{"t/a", "t/b"}[i%2]
		body := fmt.Sprintf(`{"to":%q,"id":%q,"topic":%q,"payload":"p%d"}`, client, id, topic, i)
		if code := call(t, h, "POST", "/v1/messages", body, nil); code != 200 {
			t.Fatalf("queue %s: %d", id, code)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestMailboxPagesAndFilter: a mailbox is listed a page at a time, every message once, in
// order, and a topic filter lists only that topic's.
func TestMailboxPagesAndFilter(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	want := queueN(t, f.h, "mb-1", 25)
	var got []string
	after, pages := "", 0
	for {
		var v router.MailboxView
		path := "/v1/clients/mb-1/mailbox?limit=10"
		if after != "" {
			path += "&after=" + after
		}
		if code := call(t, f.h, "GET", path, "", &v); code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
		pages++
		if v.Depth != 25 {
			t.Fatalf("depth %d, want 25", v.Depth)
		}
		for _, m := range v.Messages {
			got = append(got, m.ID)
		}
		if v.Next == "" {
			break
		}
		after = v.Next
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("%d pages listed %v, want 3 pages of %v", pages, got, want)
	}
	var v router.MailboxView
	if code := call(t, f.h, "GET", "/v1/clients/mb-1/mailbox?limit=100&topic=t/a", "", &v); code != 200 {
		t.Fatalf("filtered: %d", code)
	}
	if len(v.Messages) != 13 || v.Next != "" {
		t.Fatalf("filtered: %d messages (next %q), want the 13 on t/a", len(v.Messages), v.Next)
	}
	for _, m := range v.Messages {
		if m.Topic != "t/a" {
			t.Fatalf("filtered listing holds %s on %s", m.ID, m.Topic)
		}
	}
	var e router.ErrorBody
	if code := call(t, f.h, "GET", "/v1/clients/mb-1/mailbox?after=x", "", &e); code != 400 || e.Field != "after" {
		t.Fatalf("bad after: %d %+v", code, e)
	}
}

// TestMailboxDeleteAndPurge: one message, those on a topic, then all are deleted; each
// deleted message that asked for a receipt has the receipt deleted, the one that did not
// has none.
func TestMailboxDeleteAndPurge(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ids := queueN(t, f.h, "mb-2", 6)
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"mb-2","id":"quiet","payload":"q","receipt":false}`, nil); code != 200 {
		t.Fatalf("queue quiet: %d", code)
	}
	var d router.MailboxDeleted
	if code := call(t, f.h, "DELETE", "/v1/clients/mb-2/mailbox/"+ids[0], "", &d); code != 200 || d.Deleted != 1 || d.Depth != 6 {
		t.Fatalf("delete one: %d %+v", code, d)
	}
	var e router.ErrorBody
	if code := call(t, f.h, "DELETE", "/v1/clients/mb-2/mailbox/"+ids[0], "", &e); code != 404 || e.Field != "msg" {
		t.Fatalf("delete it again: %d %+v, want 404", code, e)
	}
	d = router.MailboxDeleted{}
	if code := call(t, f.h, "DELETE", "/v1/clients/mb-2/mailbox?topic=t/b", "", &d); code != 200 ||
		!slices.Equal(d.IDs, []string{ids[1], ids[3], ids[5]}) || d.Depth != 3 {
		t.Fatalf("purge t/b: %d %+v", code, d)
	}
	d = router.MailboxDeleted{}
	if code := call(t, f.h, "DELETE", "/v1/clients/mb-2/mailbox", "", &d); code != 200 ||
		!slices.Equal(d.IDs, []string{ids[2], ids[4], "quiet"}) || d.Depth != 0 {
		t.Fatalf("purge: %d %+v", code, d)
	}
	if ms := peekAll(t, f.st, "mb-2"); len(ms) != 0 {
		t.Fatalf("mailbox still holds %d", len(ms))
	}
	for _, id := range ids {
		var st struct {
			State string `json:"state"`
		}
		if code := call(t, f.h, "GET", "/v1/messages/"+id+"?to=mb-2", "", &st); code != 200 || st.State != "deleted" {
			t.Fatalf("state of %s: %d %+v, want deleted", id, code, st)
		}
	}
	if code := call(t, f.h, "GET", "/v1/messages/quiet?to=mb-2", "", &e); code != 404 {
		t.Fatalf("state of the message without a receipt: %d, want 404", code)
	}
}

// TestScopedTokens: a token scoped to a client-id prefix sends to, reads and manages only
// those clients, and nothing that spans clients; an unscoped token is unchanged.
func TestScopedTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	path := filepath.Join(t.TempDir(), "tokens")
	const scoped, ops = "acme-token-0123456789", "ops-token-0123456789"
	if err := os.WriteFile(path, []byte("acme "+scoped+" clients=acme-\nops "+ops+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := router.LoadTokens(path, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	h := f.r.AuthHandler(tokens)
	do := func(tok, method, path, body string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, tc := range []struct {
		method, path, body string
		want               int
		field              string
	}{
		{"POST", "/v1/messages", `{"to":"acme-1","payload":"x"}`, 200, ""},
		{"POST", "/v1/messages", `{"to":"other-1","payload":"x"}`, 403, `"field":"to"`},
		{"POST", "/v1/messages/batch", `{"messages":[{"to":"acme-2","payload":"x"},{"to":"other-2","payload":"x"}]}`, 403, `"field":"messages[1]"`},
		{"POST", "/v1/messages", `{"to_many":["acme-3","other-3"],"payload":"x"}`, 403, `"field":"to_many[1]"`},
		{"POST", "/v1/messages", `{"group":"everyone","payload":"x"}`, 403, `"field":"group"`},
		{"GET", "/v1/clients/acme-1", "", 200, ""},
		{"GET", "/v1/clients/other-1", "", 403, `"field":"id"`},
		{"GET", "/v1/clients/acme-1/mailbox", "", 200, ""},
		{"DELETE", "/v1/clients/other-1/mailbox", "", 403, `"field":"id"`},
		{"DELETE", "/v1/clients/acme-1/mailbox", "", 200, ""},
		{"GET", "/v1/messages/x?to=other-1", "", 403, `"field":"to"`},
		{"GET", "/v1/nodes", "", 403, ""},
		{"GET", "/v1/events", "", 403, ""},
		{"GET", "/metrics", "", 403, ""},
		{"POST", "/v1/groups/g/members", `{"add":["acme-1"]}`, 403, ""},
	} {
		code, body := do(scoped, tc.method, tc.path, tc.body)
		if code != tc.want || !strings.Contains(body, tc.field) {
			t.Errorf("scoped %s %s: %d %s; want %d with %s", tc.method, tc.path, code, body, tc.want, tc.field)
		}
	}
	if ms := peekAll(t, f.st, "other-2"); len(ms) != 0 {
		t.Fatalf("a refused batch stored %d messages", len(ms))
	}
	for _, p := range []string{"/v1/nodes", "/v1/clients/other-1"} {
		if code, body := do(ops, "GET", p, ""); code != 200 {
			t.Errorf("unscoped GET %s: %d %s", p, code, body)
		}
	}
	if _, err := router.ParseTokens([]byte("acme " + scoped + " prefix=acme-\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("a bad scope field: %v, want an error naming line 1", err)
	}
}
