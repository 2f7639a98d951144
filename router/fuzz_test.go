package router

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/inbox"
)

// FuzzRequest feeds arbitrary bodies to the API's request decoding and validation: it must
// never panic, and whatever it accepts must satisfy every rule a message is held to.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"to":"alice","payload":"hi"}`,
		`{"to":"alice","topic":"a/b","payload_base64":"aGk=","qos":0,"ttl":"90s","id":"m-1"}`,
		`{"to":"alice","ttl":3600}`,
		`{"to":"a/b"}`, `{"to":5}`, `{"to":"x","qos":2}`, `{"to":"x",`, `{} {}`, `[]`, ``,
		"{\"to\":\"a\",\"payload\":\"\xff\xfe\"}", `{"to":"a","payload":"\ud800\\"}`, `{"to_many":["a","\udc00"]}`, `null`,
	} {
		f.Add([]byte(s))
	}
	cfg := DefaultConfig()
	cfg.MaxPayload = 1024
	f.Fuzz(func(t *testing.T, body []byte) {
		var req Request
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/messages", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if err := decode(w, r, 64<<10, &req); err != nil {
			if _, ok := err.(fieldError); !ok {
				t.Fatalf("decode error %T is not a fieldError: %v", err, err)
			}
			return
		}
		m, err := cfg.validate(req)
		if err != nil {
			if fe, ok := err.(fieldError); !ok || fe.field == "" {
				t.Fatalf("validate error without a field: %v", err)
			}
			return
		}
		switch {
		case inbox.ValidateClientID(m.To) != nil:
			t.Fatalf("accepted invalid client id %q", m.To)
		case inbox.ValidateTopic(m.Topic) != nil:
			t.Fatalf("accepted invalid topic %q", m.Topic)
		case len(m.Payload) > cfg.MaxPayload:
			t.Fatalf("accepted a %d-byte payload", len(m.Payload))
		case m.QoS > 1:
			t.Fatalf("accepted QoS %d", m.QoS)
		case m.TTL < time.Second || m.TTL > cfg.MaxTTL:
			t.Fatalf("accepted ttl %v", m.TTL)
		}
	})
}
