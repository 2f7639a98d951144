package router_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// post sends body to path through h and decodes the JSON answer as an ErrorBody.
func post(t *testing.T, h http.Handler, path, body string) (int, router.ErrorBody) {
	t.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var eb router.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
		t.Fatalf("POST %s %q: the answer is not JSON: %s", path, body, rec.Body)
	}
	return rec.Code, eb
}

// TestInvalidUTF8Refused: a body that is not UTF-8 is refused with 400 naming the field
// whose value holds the first invalid byte and its offset, on every endpoint that takes a
// JSON body, and nothing is stored; encoding/json alone would store U+FFFD instead.
func TestInvalidUTF8Refused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, tc := range []struct {
		name, path, body, field string
		index                   int // -1: none
		offset                  string
		base64                  bool // the error points to payload_base64
	}{
		{"payload", "/v1/messages", `{"to":"dev1","payload":"` + "\xff\xfe" + `"}`, "payload", -1, "byte 24 ", true},
		{"payload after text", "/v1/messages", `{"to":"dev1","payload":"abc` + "\xc3" + `"}`, "payload", -1, "byte 27 ", true},
		{"to", "/v1/messages", `{"to":"dev` + "\x80" + `","payload":"x"}`, "to", -1, "byte 10 ", false},
		{"topic", "/v1/messages", `{"to":"dev1","topic":"a/` + "\xed\xa0\x80" + `"}`, "topic", -1, "byte 24 ", false},
		{"in a key", "/v1/messages", `{"to":"dev1","` + "\xff" + `":1}`, "body", -1, "byte 14 ", true},
		{"outside strings", "/v1/messages", `{"to":"dev1"}` + "\xff", "body", -1, "byte 13 ", true},
		{"to_many", "/v1/messages", `{"to_many":["dev1","dev` + "\xff" + `"],"payload":"x"}`, "to_many[1]", -1, "byte 23 ", false},
		{"batch item", "/v1/messages/batch", `{"messages":[{"to":"dev1","payload":"ok"},{"to":"dev1","payload":"` + "\xfe" + `"}]}`, "payload", 1, "byte 66 ", true},
		{"group change", "/v1/groups/g1/members", `{"add":["dev1","dev` + "\xff" + `"]}`, "add[1]", -1, "byte 19 ", false},
		// An escaped UTF-16 surrogate that is not half of a pair is no character either.
		{"lone high surrogate", "/v1/messages", `{"to":"dev1","payload":"\ud800"}`, "payload", -1, `\ud800 at byte 24 `, true},
		{"lone low surrogate", "/v1/messages", `{"to":"dev1","payload":"ab\uDC00"}`, "payload", -1, `\uDC00 at byte 26 `, true},
		{"high surrogate before another escape", "/v1/messages", `{"to":"dev1","payload":"\\\ud83d\u0041"}`, "payload", -1, `\ud83d at byte 26 `, true},
		{"surrogate in a batch", "/v1/messages/batch", `{"messages":[{"to":"dev1","topic":"t/\udfff"}]}`, "topic", 0, `\udfff at byte 37 `, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, eb := post(t, f.h, tc.path, tc.body)
			wantIndex := tc.index >= 0
			if code != 400 || eb.Field != tc.field || (eb.Index != nil) != wantIndex || wantIndex && *eb.Index != tc.index {
				t.Fatalf("%q → %d %+v, want 400 with field %q (index %d)", tc.body, code, eb, tc.field, tc.index)
			}
			if !strings.Contains(eb.Error, "UTF-8") || !strings.Contains(eb.Error, tc.offset) {
				t.Fatalf("%q → %q: want it to say what is not UTF-8 at %q", tc.body, eb.Error, tc.offset)
			}
			if strings.Contains(eb.Error, "payload_base64") != tc.base64 {
				t.Fatalf("%q → %q: mentions payload_base64 %v, want %v", tc.body, eb.Error, !tc.base64, tc.base64)
			}
		})
	}
	ctx := testenv.Context(t, 5*time.Second)
	if d, err := f.st.Depth(ctx, "dev1"); err != nil || d != 0 {
		t.Fatalf("refused requests stored %d messages for dev1 (%v)", d, err)
	}

	// Valid UTF-8 beyond ASCII, and escapes, arrive as sent.
	const text = "é✓😀 \u0000\u2028"
	body, _ := json.Marshal(map[string]string{"to": "dev2", "payload": text})
	if code := call(t, f.h, "POST", "/v1/messages", string(body), nil); code != 200 {
		t.Fatalf("valid UTF-8: %d", code)
	}
	if ms := peekAll(t, f.st, "dev2"); len(ms) != 1 || string(ms[0].Payload) != text {
		t.Fatalf("mailbox of dev2: %+v, want one message with payload %q", ms, text)
	}
	// A surrogate pair is one character; an escaped backslash before "ud800" is text.
	if code := call(t, f.h, "POST", "/v1/messages", `{"to":"dev3","payload":"\\ud800 \ud83d\ude00"}`, nil); code != 200 {
		t.Fatalf("a surrogate pair: %d", code)
	}
	if ms := peekAll(t, f.st, "dev3"); len(ms) != 1 || string(ms[0].Payload) != `\ud800 😀` {
		t.Fatalf("mailbox of dev3: %+v, want one message with payload %q", ms, `\ud800 😀`)
	}
}

// TestNonObjectBodyRefused: a body of another JSON kind than an object is refused naming
// the body and the kind it is, without Go's type names.
func TestNonObjectBodyRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, path := range []string{"/v1/messages", "/v1/messages/batch", "/v1/groups/g1/members"} {
		for body, kind := range map[string]string{
			`[]`: "an array", ` [{"to":"a"}]`: "an array", `"to"`: "a string", `5`: "a number",
			`-1.5`: "a number", `true`: "a boolean", `null`: "null",
		} {
			code, eb := post(t, f.h, path, body)
			if want := "body: want a JSON object, got " + kind; code != 400 || eb.Field != "body" || eb.Error != want || eb.Index != nil {
				t.Fatalf("POST %s %s → %d %+v, want 400 with field body and %q", path, body, code, eb, want)
			}
		}
		// Malformed JSON is that, whatever it begins with.
		for _, body := range []string{`[1,]`, `[1,`, `tru`, `{"to":`} {
			if code, eb := post(t, f.h, path, body); code != 400 || eb.Field != "body" || !strings.Contains(eb.Error, "malformed JSON") {
				t.Fatalf("POST %s %s → %d %+v, want malformed JSON", path, body, code, eb)
			}
		}
	}
	// A field of the wrong kind is named in JSON's terms too.
	for _, tc := range []struct{ path, body, field, want string }{
		{"/v1/messages", `{"to":5}`, "to", "to: want a JSON string, got a number"},
		{"/v1/messages", `{"to":"a","qos":1.5}`, "qos", "qos: want a JSON integer in range, got the number 1.5"},
		{"/v1/messages", `{"to":"a","receipt":"yes"}`, "receipt", "receipt: want true or false, got a string"},
		{"/v1/messages/batch", `{"messages":{"to":"a"}}`, "messages", "messages: want a JSON array, got an object"},
		{"/v1/groups/g1/members", `{"add":"dev1"}`, "add", "add: want a JSON array, got a string"},
	} {
		code, eb := post(t, f.h, tc.path, tc.body)
		if code != 400 || eb.Field != tc.field || eb.Error != tc.want {
			t.Fatalf("POST %s %s → %d %+v, want 400 with field %s and %q", tc.path, tc.body, code, eb, tc.field, tc.want)
		}
	}
}

// TestMethodNotAllowed: a path the API serves, asked with another method, is a JSON 405
// with an Allow header, with the API's handler, behind tokens and with the dashboard's; a
// path it does not serve stays a 404.
func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	path := filepath.Join(t.TempDir(), "tokens")
	const tok = "ops-token-0123456789"
	const scoped = "acme-token-0123456789"
	if err := os.WriteFile(path, []byte("ops "+tok+"\nacme "+scoped+" clients=acme-\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := router.LoadTokens(path, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	d := newDashboard(t, f, nil)
	handlers := map[string]http.Handler{
		"api": f.h, "api with tokens": f.r.AuthHandler(tokens), "dashboard": d.Handler(), "dashboard with tokens": d.AuthHandler(tokens),
	}
	for name, h := range handlers {
		do := func(method, path string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(method, path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec
		}
		for _, tc := range []struct{ method, path, allow string }{
			{"GET", "/v1/messages", "POST"},
			{"PUT", "/v1/messages", "POST"},
			{"DELETE", "/v1/messages/batch", "GET, HEAD, POST"}, // GET /v1/messages/{id} with the id "batch"
			{"POST", "/v1/messages/m-1", "GET, HEAD"},
			{"PUT", "/v1/clients/dev1/mailbox", "DELETE, GET, HEAD"},
			{"POST", "/v1/groups/g1", "DELETE, GET, HEAD"},
			{"GET", "/v1/groups/g1/members", "POST"},
			{"POST", "/healthz", "GET, HEAD"},
		} {
			rec := do(tc.method, tc.path)
			var eb router.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || rec.Code != http.StatusMethodNotAllowed ||
				rec.Header().Get("Allow") != tc.allow || !strings.Contains(eb.Error, tc.method+" "+tc.path) {
				t.Fatalf("%s: %s %s → %d Allow %q %s, want a JSON 405 with Allow %q", name, tc.method, tc.path,
					rec.Code, rec.Header().Get("Allow"), rec.Body, tc.allow)
			}
		}
		if rec := do("GET", "/v1/message"); rec.Code != 404 || rec.Header().Get("Allow") != "" {
			t.Fatalf("%s: GET /v1/message → %d Allow %q, want 404", name, rec.Code, rec.Header().Get("Allow"))
		}
	}
	for _, name := range []string{"dashboard", "dashboard with tokens"} {
		for _, path := range []string{"/v1/dashboard", "/ui", "/"} {
			req := httptest.NewRequest("POST", path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			handlers[name].ServeHTTP(rec, req)
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
				t.Fatalf("%s: POST %s → %d Allow %q, want 405 with Allow GET, HEAD", name, path, rec.Code, rec.Header().Get("Allow"))
			}
		}
	}
	// A token scoped to clients is told the same, not that the path spans clients.
	req := httptest.NewRequest("GET", "/v1/messages", nil)
	req.Header.Set("Authorization", "Bearer "+scoped)
	rec := httptest.NewRecorder()
	f.r.AuthHandler(tokens).ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "POST" {
		t.Fatalf("GET /v1/messages with a scoped token: %d Allow %q %s, want 405 with Allow POST", rec.Code, rec.Header().Get("Allow"), rec.Body)
	}
	// Without a token, the token is asked for first.
	req = httptest.NewRequest("GET", "/v1/messages", nil)
	rec = httptest.NewRecorder()
	f.r.AuthHandler(tokens).ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("GET /v1/messages without a token: %d, want 401", rec.Code)
	}
}
