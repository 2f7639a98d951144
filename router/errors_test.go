package router_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, eb := post(t, f.h, tc.path, tc.body)
			wantIndex := tc.index >= 0
			if code != 400 || eb.Field != tc.field || (eb.Index != nil) != wantIndex || wantIndex && *eb.Index != tc.index {
				t.Fatalf("%q → %d %+v, want 400 with field %q (index %d)", tc.body, code, eb, tc.field, tc.index)
			}
			if !strings.Contains(eb.Error, "not valid UTF-8") || !strings.Contains(eb.Error, tc.offset) {
				t.Fatalf("%q → %q: want it to say not valid UTF-8 at %q", tc.body, eb.Error, tc.offset)
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
}
