package router_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/embedded"
)

type fanoutAnswer struct {
	ID      string `json:"id"`
	Group   string `json:"group"`
	Results []struct {
		To        string `json:"to"`
		ID        string `json:"id"`
		Status    string `json:"status"`
		Duplicate bool   `json:"duplicate"`
		Code      int    `json:"code"`
		Error     string `json:"error"`
	} `json:"results"`
}

func quoted(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	return strings.Join(q, ",")
}

// TestFanoutList: a message to_many offline clients is queued once in each mailbox under
// an id of its own, derived from the request's; the same request again is recognised in
// every mailbox.
func TestFanoutList(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	var ids []string
	for i := range 1500 { // more than one slice of MaxBatch
		ids = append(ids, fmt.Sprintf("fan-%04d", i))
	}
	body := `{"id":"req-1","payload":"hi","to_many":[` + quoted(ids) + `]}`
	for round, wantDup := range []bool{false, true} {
		var a fanoutAnswer
		if code := call(t, f.h, "POST", "/v1/messages", body, &a); code != 200 || a.ID != "req-1" || len(a.Results) != len(ids) {
			t.Fatalf("round %d: %d, id %q, %d results", round, code, a.ID, len(a.Results))
		}
		seen := map[string]bool{}
		for i, res := range a.Results {
			if res.To != ids[i] || res.Status != "queued" || res.Code != 200 || res.Duplicate != wantDup || res.ID != router.FanoutID("req-1", ids[i]) {
				t.Fatalf("round %d: result %d: %+v", round, i, res)
			}
			if seen[res.ID] {
				t.Fatalf("id %s given twice", res.ID)
			}
			seen[res.ID] = true
		}
	}
	for _, id := range ids {
		ms := peekAll(t, f.st, id)
		if len(ms) != 1 || ms[0].ID != router.FanoutID("req-1", id) || ms[0].Topic != "inbox/"+id || string(ms[0].Payload) != "hi" {
			t.Fatalf("mailbox of %s: %+v, want the one message", id, ms)
		}
	}
	// Without an id, each request is new; a topic given is every recipient's.
	var a fanoutAnswer
	if code := call(t, f.h, "POST", "/v1/messages", `{"topic":"news/all","to_many":["fan-0000","fan-0001"]}`, &a); code != 200 || a.ID == "" {
		t.Fatalf("no id: %d %+v", code, a)
	}
	if ms := peekAll(t, f.st, "fan-0001"); len(ms) != 2 || ms[1].Topic != "news/all" || ms[1].ID != router.FanoutID(a.ID, "fan-0001") {
		t.Fatalf("mailbox after the second send: %+v", ms)
	}
}

// TestFanoutRefusals: bad lists are refused with 400 naming what is wrong, and nothing is
// stored.
func TestFanoutRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *router.Config) { c.Fanout.MaxList = 5 })
	for _, tc := range []struct{ body, field, says string }{
		{`{"to_many":["a","b","a"]}`, "to_many[2]", "also to_many[0]"},
		{`{"to_many":["a","b/c"]}`, "to_many[1]", "'/'"},
		{`{"to_many":["a",""]}`, "to_many[1]", "empty"},
		{`{"to_many":["a","b","c","d","e","f"]}`, "to_many", "maximum of 5"},
		{`{"to_many":[]}`, "to_many", "empty"},
		{`{"to":"a","to_many":["b"]}`, "to", "one of"},
		{`{"to":"a","group":"g"}`, "to", "one of"},
		{`{"to_many":["a"],"group":"g"}`, "group", "one of"},
		{`{"to_many":["a"],"qos":2}`, "qos", "QoS 2"},
		{`{"to_many":"a"}`, "to_many", "want a JSON array, got a string"},
		{`{"group":"bad name"}`, "group", "A-Za-z0-9"},
		{`{"messages":[{"to_many":["a"]}]}`, "to_many", "one client"},
	} {
		path := "/v1/messages"
		if strings.HasPrefix(tc.body, `{"messages"`) {
			path = "/v1/messages/batch"
		}
		var eb router.ErrorBody
		if code := call(t, f.h, "POST", path, tc.body, &eb); code != 400 || eb.Field != tc.field || !strings.Contains(eb.Error, tc.says) {
			t.Errorf("%s: %d %+v, want 400 naming %s (%q)", tc.body, code, eb, tc.field, tc.says)
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		if ms := peekAll(t, f.st, id); len(ms) != 0 {
			t.Fatalf("a refused request stored %+v for %s", ms, id)
		}
	}
}

// TestGroupsAPI: members are added and removed in batches, read in pages and the group
// deleted; bad names and ids are refused naming the field.
func TestGroupsAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	var v router.GroupView
	if code := call(t, f.h, "POST", "/v1/groups/user:42/members", `{"add":["d1","d2","d3","d4"]}`, &v); code != 200 || v.Size != 4 {
		t.Fatalf("add: %d %+v", code, v)
	}
	if code := call(t, f.h, "POST", "/v1/groups/user:42/members", `{"add":["d5"],"remove":["d1","nobody"]}`, &v); code != 200 || v.Size != 4 {
		t.Fatalf("add and remove: %d %+v", code, v)
	}
	var got []string
	after := ""
	for range 10 {
		v = router.GroupView{}
		if code := call(t, f.h, "GET", "/v1/groups/user:42?limit=3&after="+after, "", &v); code != 200 || v.Size != 4 {
			t.Fatalf("page after %q: %d %+v", after, code, v)
		}
		got = append(got, v.Members...)
		if v.Next == "" {
			break
		}
		after = v.Next
	}
	if strings.Join(got, ",") != "d2,d3,d4,d5" {
		t.Fatalf("members %v", got)
	}
	for _, tc := range []struct{ method, path, body, field string }{
		{"POST", "/v1/groups/a%20b/members", `{"add":["x"]}`, "name"},
		{"POST", "/v1/groups/g/members", `{"add":["x"],"remove":["x"]}`, "remove[0]"},
		{"POST", "/v1/groups/g/members", `{"add":["x#"]}`, "add[0]"},
		{"POST", "/v1/groups/g/members", `{}`, "add"},
		{"POST", "/v1/groups/g/members", `{"add":["x"],"extra":1}`, "extra"},
		{"GET", "/v1/groups/g?limit=5000", "", "limit"},
	} {
		var eb router.ErrorBody
		if code := call(t, f.h, tc.method, tc.path, tc.body, &eb); code != 400 || eb.Field != tc.field {
			t.Errorf("%s %s %s: %d %+v, want 400 naming %s", tc.method, tc.path, tc.body, code, eb, tc.field)
		}
	}
	if code := call(t, f.h, "GET", "/v1/groups/g", "", nil); code != 404 {
		t.Fatalf("a refused change made group g: %d", code)
	}
	if code := call(t, f.h, "DELETE", "/v1/groups/user:42", "", nil); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	if code := call(t, f.h, "DELETE", "/v1/groups/user:42", "", nil); code != 404 {
		t.Fatalf("delete again: %d", code)
	}
	if code := call(t, f.h, "POST", "/v1/messages", `{"group":"user:42","payload":"x"}`, nil); code != 404 {
		t.Fatalf("send to a deleted group: %d", code)
	}
}

// addMembers puts n members named prefix-%06d in group through the API.
func addMembers(t *testing.T, h http.Handler, group, prefix string, n int) []string {
	t.Helper()
	var all []string
	for start := 0; start < n; start += store.MaxGroupChange {
		var ids []string
		for i := start; i < min(n, start+store.MaxGroupChange); i++ {
			ids = append(ids, fmt.Sprintf("%s-%06d", prefix, i))
		}
		var v router.GroupView
		if code := call(t, h, "POST", "/v1/groups/"+group+"/members", `{"add":[`+quoted(ids)+`]}`, &v); code != 200 || v.Size != start+len(ids) {
			t.Fatalf("add %d members: %d %+v", len(ids), code, v)
		}
		all = append(all, ids...)
	}
	return all
}

// waitJob polls GET /v1/jobs/{id} until the job ends, and returns the views it saw.
func waitJob(t *testing.T, h http.Handler, id string, within time.Duration) []router.JobView {
	t.Helper()
	var seen []router.JobView
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var v router.JobView
		if code := call(t, h, "GET", "/v1/jobs/"+id, "", &v); code != 200 {
			t.Fatalf("GET job %s: %d", id, code)
		}
		seen = append(seen, v)
		if v.State != store.JobRunning {
			return seen
		}
		time.Sleep(20 * time.Millisecond) // polling the job's state, bounded by the deadline
	}
	t.Fatalf("job %s not done within %v: %+v", id, within, seen[len(seen)-1])
	return nil
}

// TestGroupInlineAndJob: a small group is sent to within the request; a larger one by a
// job that answers 202 at once and reports its progress until every member has the
// message; the same request again finds the same job.
func TestGroupInlineAndJob(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	cl := newCluster(t)
	r := newRouter(t, st, cl.w, func(c *router.Config) { c.Fanout.InlineGroup = 10; c.Fanout.JobPage = 100 })
	h := r.Handler()
	small := addMembers(t, h, "small", "s", 10)
	var a fanoutAnswer
	if code := call(t, h, "POST", "/v1/messages", `{"group":"small","payload":"s"}`, &a); code != 200 || a.Group != "small" || len(a.Results) != 10 {
		t.Fatalf("small group: %d %+v", code, a)
	}
	for _, id := range small {
		if ms := peekAll(t, st, id); len(ms) != 1 {
			t.Fatalf("%s: %d messages", id, len(ms))
		}
	}
	big := addMembers(t, h, "big", "b", 2500)
	var v router.JobView
	if code := call(t, h, "POST", "/v1/messages", `{"group":"big","id":"big-1","payload":"b"}`, &v); code != 202 || v.Job != router.JobID("big-1") || v.Total != 2500 {
		t.Fatalf("big group: %d %+v", code, v)
	}
	views := waitJob(t, h, v.Job, time.Minute)
	end := views[len(views)-1]
	if end.State != store.JobDone || end.Total != 2500 || end.Queued != 2500 || end.Sent != 2500 || end.Duplicates != 0 || end.Failed != 0 || end.Claims != 1 {
		t.Fatalf("job ended %+v", end)
	}
	for _, id := range big {
		if ms := peekAll(t, st, id); len(ms) != 1 || ms[0].ID != router.FanoutID("big-1", id) || string(ms[0].Payload) != "b" {
			t.Fatalf("%s: %+v", id, ms)
		}
	}
	t.Logf("MEASURED job of %d: %d polls, done in %.3fs", end.Total, len(views), end.Elapsed)
	var again router.JobView
	if code := call(t, h, "POST", "/v1/messages", `{"group":"big","id":"big-1","payload":"b"}`, &again); code != 202 || again.Job != v.Job || !again.Duplicate || again.State != store.JobDone {
		t.Fatalf("the same request again: %d %+v", code, again)
	}
}

// TestJobResumed: a job whose router died after sending part of a page it never recorded
// is claimed by another router when the lease runs out, and resumed from the cursor: the
// page is sent again, the copies already queued are counted as duplicates, and every
// member ends up with exactly one message.
func TestJobResumed(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	cl := newCluster(t)
	// The dead router's part, played by hand: it claimed the job, recorded one page of
	// 100 and sent 50 of the next before it died.
	ctx := testenv.Context(t, time.Minute)
	var members []string
	for i := range 300 {
		members = append(members, fmt.Sprintf("res-%03d", i))
	}
	if _, err := st.ChangeGroup(ctx, "resume", members, nil); err != nil {
		t.Fatal(err)
	}
	spec := `{"id":"res-1","payload":"cmVz","qos":1,"ttl_ms":3600000}`
	if _, _, err := st.CreateJob(ctx, store.Job{ID: "jres", Group: "resume", Spec: []byte(spec), Total: 300, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.ClaimJob(ctx, "dead-router", time.Second); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	var sent []store.Message
	for _, id := range members[:150] {
		m := store.Message{ID: router.FanoutID("res-1", id), To: id, Topic: "inbox/" + id, Payload: []byte("res"), QoS: 1, TTL: time.Hour}
		sent = append(sent, m)
	}
	if _, err := st.Append(ctx, 100, sent); err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceJob(ctx, "jres", "dead-router", store.JobProgress{Cursor: members[99], Add: store.JobCounts{Queued: 100}, State: store.JobRunning, At: time.Now()}, time.Second); err != nil {
		t.Fatal(err)
	}
	r := newRouter(t, st, cl.w, func(c *router.Config) {
		c.Fanout.JobPage = 100
		c.Fanout.JobLease = time.Second
		c.Fanout.JobPoll = 100 * time.Millisecond
	})
	views := waitJob(t, r.Handler(), "jres", time.Minute)
	end := views[len(views)-1]
	if end.State != store.JobDone || end.Queued != 250 || end.Duplicates != 50 || end.Sent != 300 || end.Claims != 2 {
		t.Fatalf("resumed job ended %+v; want 250 queued (100 by the dead router), 50 duplicates, 2 claims", end)
	}
	for _, id := range members {
		if ms := peekAll(t, st, id); len(ms) != 1 {
			t.Fatalf("%s: %d messages, want 1", id, len(ms))
		}
	}
	t.Logf("MEASURED resumed job: %+v", end.JobCounts)
}

// TestFanoutNeedsToken: with tokens on, the fan-out, group and job endpoints refuse a
// request without one, as every other endpoint does.
func TestFanoutNeedsToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("ops 0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := router.LoadTokens(path, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	h := f.r.AuthHandler(tokens)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/messages", `{"to_many":["a"]}`},
		{"POST", "/v1/messages", `{"group":"g"}`},
		{"POST", "/v1/groups/g/members", `{"add":["a"]}`},
		{"GET", "/v1/groups/g", ""},
		{"DELETE", "/v1/groups/g", ""},
		{"GET", "/v1/jobs/j1", ""},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 401 {
			t.Errorf("%s %s without a token: %d, want 401", tc.method, tc.path, rec.Code)
		}
		req = httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer 0123456789abcdef0123")
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == 401 {
			t.Errorf("%s %s with the token: 401", tc.method, tc.path)
		}
	}
	if ms := peekAll(t, f.st, "a"); len(ms) != 1 {
		t.Fatalf("the authorised fan-out stored %d messages", len(ms))
	}
}

// TestFanoutListAtTheLimit: a list of the maximum 10,000 client ids of the longest length
// (128 bytes) fits the body limit and is sent; one more is refused, nothing stored.
func TestFanoutListAtTheLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ids := make([]string, 10_001)
	for i := range ids {
		ids[i] = fmt.Sprintf("%06d-%s", i, strings.Repeat("é", 61)) // 7 + 122 bytes: over 128
		ids[i] = ids[i][:128-1] + "x"
	}
	var eb router.ErrorBody
	if code := call(t, f.h, "POST", "/v1/messages", `{"payload":"p","to_many":[`+quoted(ids)+`]}`, &eb); code != 400 || eb.Field != "to_many" {
		t.Fatalf("10,001 ids: %d %+v, want 400 naming to_many", code, eb)
	}
	if ms := peekAll(t, f.st, ids[0]); len(ms) != 0 {
		t.Fatalf("a refused list stored %+v", ms)
	}
	var a fanoutAnswer
	if code := call(t, f.h, "POST", "/v1/messages", `{"payload":"p","to_many":[`+quoted(ids[:10_000])+`]}`, &a); code != 200 || len(a.Results) != 10_000 {
		t.Fatalf("10,000 ids: %d, %d results", code, len(a.Results))
	}
	if ms := peekAll(t, f.st, ids[9_999]); len(ms) != 1 {
		t.Fatalf("the last of 10,000: %d messages", len(ms))
	}
}

// flakyStore refuses its first appends as a store under back-pressure does
// (store.ErrUnavailable: the router answers 503).
type flakyStore struct {
	*embedded.Store
	refuse  atomic.Int64 // appends still to refuse
	refused atomic.Int64
}

func (f *flakyStore) Append(ctx context.Context, limit int, msgs []store.Message) ([]store.AppendResult, error) {
	if f.refuse.Add(-1) >= 0 {
		f.refused.Add(1)
		return nil, fmt.Errorf("append: %w: injected by the test", store.ErrUnavailable)
	}
	return f.Store.Append(ctx, limit, msgs)
}

// TestJobRetriesBackPressure: a job whose appends the store refuses for a while (503s)
// retries them with back-off, with the same ids, and ends done with every member queued
// once and none failed.
func TestJobRetriesBackPressure(t *testing.T) {
	t.Parallel()
	st := &flakyStore{Store: openStore(t)}
	st.refuse.Store(8)
	cl := newCluster(t)
	r := newRouter(t, st, cl.w, func(c *router.Config) { c.Fanout.InlineGroup = 10; c.Fanout.JobPage = 200 })
	h := r.Handler()
	ids := addMembers(t, h, "busy", "bp", 1000)
	var v router.JobView
	if code := call(t, h, "POST", "/v1/messages", `{"group":"busy","id":"bp-1","payload":"x"}`, &v); code != 202 {
		t.Fatalf("group send: %d %+v", code, v)
	}
	views := waitJob(t, h, v.Job, time.Minute)
	end := views[len(views)-1]
	if end.State != store.JobDone || end.Queued+end.Duplicates != 1000 || end.Failed != 0 || st.refused.Load() != 8 {
		t.Fatalf("job ended %+v after %d refused appends; want done, 1000 queued, none failed, 8 refused", end, st.refused.Load())
	}
	for _, id := range ids {
		if ms := peekAll(t, st, id); len(ms) != 1 {
			t.Fatalf("%s: %d messages", id, len(ms))
		}
	}
	t.Logf("MEASURED job under back-pressure: %d appends refused, then %+v in %.2fs", st.refused.Load(), end.JobCounts, end.Elapsed)
}
