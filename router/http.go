package router

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-mqtt/switchboard/inbox"
	"github.com/switchboard-mqtt/switchboard/store"
)

// Request is the JSON body of POST /v1/messages (and each item of a batch).
type Request struct {
	ID            string          `json:"id,omitempty"` // optional: a retry with the same id is recognised
	To            string          `json:"to"`
	Topic         string          `json:"topic,omitempty"`
	Payload       *string         `json:"payload,omitempty"`
	PayloadBase64 *string         `json:"payload_base64,omitempty"`
	QoS           *int            `json:"qos,omitempty"`
	TTL           json.RawMessage `json:"ttl,omitempty"`      // "24h" or seconds
	MaxWait       json.RawMessage `json:"max_wait,omitempty"` // "1s" or seconds; single sends only
	// ToMany and Group fan the message out (see fanout.go): give one of To, ToMany, Group.
	ToMany []string `json:"to_many,omitempty"`
	Group  string   `json:"group,omitempty"`
	// Receipt asks for the message's terminal receipt (absent: true); see receipts.go.
	Receipt *bool `json:"receipt,omitempty"`
	// CollapseKey makes this message replace the client's queued one with the same key.
	CollapseKey string `json:"collapse_key,omitempty"`
	// DeliverAt holds the message back until that time (RFC 3339), at most its ttl ahead.
	DeliverAt string `json:"deliver_at,omitempty"`
	// Priority is "high" or "normal" (the default): see Message.Priority.
	Priority string `json:"priority,omitempty"`
}

// BatchRequest is the JSON body of POST /v1/messages/batch.
type BatchRequest struct {
	Messages []Request       `json:"messages"`
	MaxWait  json.RawMessage `json:"max_wait,omitempty"` // "1s" or seconds, for every message
}

// BatchItem is one entry of a batch answer: a result or an error.
type BatchItem struct {
	Result
	Error string `json:"error,omitempty"`
	Code  int    `json:"code"`
}

// ErrorBody is the JSON answer for a refused request.
type ErrorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	Index *int   `json:"index,omitempty"` // the offending item of a batch
}

// fieldError is a validation failure naming the request field.
type fieldError struct {
	field string
	msg   string
}

func (e fieldError) Error() string { return e.field + ": " + e.msg }

// mediaTypeError is the fieldError of a body sent as something other than JSON: a 415.
type mediaTypeError struct{ fieldError }

func (e mediaTypeError) Unwrap() error { return e.fieldError }

// maxIDLen bounds a client-chosen message id.
const maxIDLen = 64

// Validate turns a request into a message, or a fieldError naming what is wrong.
func (c Config) validate(req Request) (Message, error) {
	switch {
	case req.ToMany != nil:
		return Message{}, fieldError{"to_many", "a batch item goes to one client: use to"}
	case req.Group != "":
		return Message{}, fieldError{"group", "a batch item goes to one client: use to"}
	}
	if req.To == "" {
		return Message{}, fieldError{"to", "is required: the client id to send to"}
	}
	if err := inbox.ValidateClientID(req.To); err != nil {
		return Message{}, fieldError{"to", err.Error()}
	}
	// Receipts are on unless the request turns them off.
	m := Message{To: req.To, Topic: req.Topic, QoS: 1, TTL: c.DefaultTTL, Receipt: req.Receipt == nil || *req.Receipt}
	if req.ID != "" {
		if err := validMessageID(req.ID); err != nil {
			return Message{}, err
		}
		m.ID = req.ID
	}
	if m.Topic == "" {
		m.Topic = inbox.Topic(c.InboxPrefix, req.To)
	}
	if err := inbox.ValidateTopic(m.Topic); err != nil {
		return Message{}, fieldError{"topic", err.Error()}
	}
	switch {
	case req.Payload != nil && req.PayloadBase64 != nil:
		return Message{}, fieldError{"payload", "give payload or payload_base64, not both"}
	case req.PayloadBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*req.PayloadBase64)
		if err != nil {
			return Message{}, fieldError{"payload_base64", "not valid base64: " + err.Error()}
		}
		m.Payload = b
	case req.Payload != nil:
		m.Payload = []byte(*req.Payload)
	}
	if len(m.Payload) > c.MaxPayload {
		return Message{}, fieldError{"payload", fmt.Sprintf("%d bytes is over the maximum of %d", len(m.Payload), c.MaxPayload)}
	}
	if req.QoS != nil {
		switch *req.QoS {
		case 0, 1:
			m.QoS = byte(*req.QoS)
		case 2:
			return Message{}, fieldError{"qos", "QoS 2 is not supported for directed messages yet; use 0 or 1"}
		default:
			return Message{}, fieldError{"qos", fmt.Sprintf("%d is not a QoS level; use 0 or 1", *req.QoS)}
		}
	}
	if len(req.TTL) > 0 {
		ttl, err := parseDuration(req.TTL)
		if err != nil {
			return Message{}, fieldError{"ttl", err.Error()}
		}
		if ttl < time.Second || ttl > c.MaxTTL {
			return Message{}, fieldError{"ttl", fmt.Sprintf("%v is out of range: 1s to %v", ttl, c.MaxTTL)}
		}
		m.TTL = ttl
	}
	if req.CollapseKey != "" {
		if len(req.CollapseKey) > store.MaxCollapseKey || strings.IndexFunc(req.CollapseKey, unicode.IsControl) >= 0 || !utf8.ValidString(req.CollapseKey) {
			return Message{}, fieldError{"collapse_key", fmt.Sprintf("use 1-%d bytes of UTF-8 without control characters", store.MaxCollapseKey)}
		}
		m.CollapseKey = req.CollapseKey
	}
	switch req.Priority {
	case "", "normal":
	case "high":
		m.Priority = store.PriorityHigh
	default:
		return Message{}, fieldError{"priority", fmt.Sprintf("%.32q: use high or normal", req.Priority)}
	}
	if req.DeliverAt != "" {
		at, err := time.Parse(time.RFC3339Nano, req.DeliverAt)
		if err != nil {
			return Message{}, fieldError{"deliver_at", fmt.Sprintf("%q is not an RFC 3339 time like 2026-12-24T18:00:00Z", req.DeliverAt)}
		}
		if ahead := time.Until(at.Add(-c.ClockSkew)); ahead >= m.TTL {
			return Message{}, fieldError{"deliver_at", fmt.Sprintf("is %v ahead, not less than the ttl of %v: it would expire before it is due",
				ahead.Round(time.Second), m.TTL)}
		}
		m.DeliverAt = at
	}
	return m, nil
}

// maxWait reads a request's max_wait: 0 (the default) when absent.
func (c Config) maxWait(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 {
		return 0, nil
	}
	d, err := parseDuration(raw)
	if err != nil {
		return 0, fieldError{"max_wait", err.Error()}
	}
	if d < time.Millisecond || d > c.MaxMaxWait {
		return 0, fieldError{"max_wait", fmt.Sprintf("%v is out of range: 1ms to %v", d, c.MaxMaxWait)}
	}
	return d, nil
}

// parseDuration reads a duration given as a string ("90s", "24h") or a number of seconds.
func parseDuration(raw json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration like \"90s\" or \"24h\"", s)
		}
		return d, nil
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err == nil {
		return time.Duration(secs * float64(time.Second)), nil
	}
	return 0, fmt.Errorf("%s is neither a duration string nor a number of seconds", raw)
}

// Handler serves the router's HTTP API.
func (r *Router) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range r.apiRoutes() {
		mux.Handle(rt.pattern, rt.handler)
	}
	// The catch-all matches every method, so the mux's own 405 never happens: it is
	// answered here, from the routes matched with the other methods.
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if allow := allowedMethods(r.mux(), req); allow != nil {
			methodNotAllowed(w, req, allow)
			return
		}
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("no such endpoint: %s %s", req.Method, req.URL.Path)})
	})
	return mux
}

// allowedMethods lists, sorted, the methods with which a pattern of mux matches req's
// path (GET's include HEAD); nil when none does.
func allowedMethods(mux *http.ServeMux, req *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodPatch, http.MethodPost, http.MethodPut} {
		if m == req.Method {
			continue
		}
		probe := *req
		probe.Method = m
		if _, pattern := mux.Handler(&probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	return allow
}

// methodNotAllowed answers 405 for a path served with the methods allow only.
func methodNotAllowed(w http.ResponseWriter, req *http.Request, allow []string) {
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeJSON(w, http.StatusMethodNotAllowed, ErrorBody{Error: fmt.Sprintf("method not allowed: %s %s; use %s",
		req.Method, req.URL.Path, strings.Join(allow, " or "))})
}

// patternMux matches requests to routes (its handlers are never called through it).
func patternMux(routes []route) *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.pattern, rt.handler)
	}
	return mux
}

// route is one endpoint: a ServeMux pattern and its handler.
type route struct {
	pattern string
	handler http.Handler
}

// apiRoutes are the API's endpoints. The OpenAPI document (openapi.json) describes each,
// and no other (TestOpenAPIMatchesRoutes).
func (r *Router) apiRoutes() []route {
	return []route{
		{"POST /v1/messages", http.HandlerFunc(r.handleSend)},
		{"POST /v1/messages/batch", http.HandlerFunc(r.handleBatch)},
		{"GET /v1/messages/{id}", http.HandlerFunc(r.handleMessage)},
		{"GET /v1/events", http.HandlerFunc(r.handleEvents)},
		{"POST /v1/groups/{name}/members", http.HandlerFunc(r.handleGroupChange)},
		{"GET /v1/groups/{name}", http.HandlerFunc(r.handleGroup)},
		{"DELETE /v1/groups/{name}", http.HandlerFunc(r.handleGroupDelete)},
		{"GET /v1/jobs/{id}", http.HandlerFunc(r.handleJob)},
		{"GET /v1/clients/{id}", http.HandlerFunc(r.handleClient)},
		{"GET /v1/clients/{id}/mailbox", http.HandlerFunc(r.handleMailbox)},
		{"DELETE /v1/clients/{id}/mailbox", http.HandlerFunc(r.handleMailboxPurge)},
		{"DELETE /v1/clients/{id}/mailbox/{msg}", http.HandlerFunc(r.handleMailboxDelete)},
		{"GET /v1/nodes", http.HandlerFunc(r.handleNodes)},
		{"GET /v1/openapi.json", http.HandlerFunc(serveOpenAPI)},
		{"GET /healthz", http.HandlerFunc(r.handleHealth)},
		{"GET /metrics", promhttp.HandlerFor(r.registry, promhttp.HandlerOpts{})},
	}
}

// decode reads one JSON object from the body, refusing unknown fields and trailing data,
// and a body that is not UTF-8: encoding/json would replace each invalid byte with U+FFFD
// and store what was not sent.
func decode(w http.ResponseWriter, req *http.Request, limit int64, v any) error {
	if ct := req.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return mediaTypeError{fieldError{"body", fmt.Sprintf("content type %q: send application/json", ct)}}
	}
	if req.ContentLength > limit {
		// Refused from the header, before any of the body is read.
		return fieldError{"body", fmt.Sprintf("%d bytes is larger than the limit of %d bytes", req.ContentLength, limit)}
	}
	// The decoder would hold the whole value in memory anyway: reading it first lets the
	// body be checked as a whole.
	raw, err := readBody(http.MaxBytesReader(w, req.Body, limit), req.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fieldError{"body", fmt.Sprintf("larger than the limit of %d bytes", limit)}
		}
		return fieldError{"body", "reading it: " + err.Error()}
	}
	if !utf8.Valid(raw) {
		return invalidUTF8(raw)
	}
	if off := loneSurrogate(raw); off >= 0 {
		return notText(raw, off, fmt.Sprintf("%s at byte %d of the body is half of a UTF-16 surrogate pair, which UTF-8 cannot hold", raw[off:off+6], off))
	}
	if kind := jsonKind(raw); kind != "" && kind != "an object" && json.Valid(raw) {
		return fieldError{"body", "want a JSON object, got " + kind}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fieldError{"body", fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, err)}
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				field = "body"
			}
			return fieldError{field, fmt.Sprintf("want %s, got %s", typeKind(te.Type), article(te.Value))}
		case errors.Is(err, io.EOF):
			return fieldError{"body", "empty: send a JSON object"}
		case errors.Is(err, io.ErrUnexpectedEOF):
			return fieldError{"body", fmt.Sprintf("malformed JSON: it ends at byte %d, within a value", len(raw))}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return fieldError{name, "unknown field"}
		}
		return fieldError{"body", err.Error()}
	}
	if dec.More() {
		return fieldError{"body", "trailing data after the JSON object"}
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fieldError{"body", "trailing data after the JSON object"}
	}
	return nil
}

// firstRead is the most of a body's declared length readBody reserves before it arrives.
const firstRead = 64 << 10

// readBody reads body to its end, into a buffer of its length when that is known, up to
// firstRead: beyond it the buffer grows with what arrives, so that a Content-Length alone
// (a client that declares 60 MB and sends 5 bytes) reserves no memory.
func readBody(body io.Reader, length int64) ([]byte, error) {
	if length < 0 {
		length = 511
	}
	raw := make([]byte, 0, min(length, firstRead)+1) // +1: the read that sees the end
	for {
		if len(raw) == cap(raw) {
			raw = append(raw, 0)[:len(raw)]
		}
		n, err := body.Read(raw[len(raw):cap(raw)])
		raw = raw[:len(raw)+n]
		if errors.Is(err, io.EOF) {
			return raw, nil
		}
		if err != nil {
			return raw, err
		}
	}
}

// invalidUTF8 is the error for a body that is not UTF-8: it names the field whose value
// holds the first invalid byte ("body" when that is not a string value) and its offset.
func invalidUTF8(raw []byte) error {
	off := 0
	for off < len(raw) {
		r, size := utf8.DecodeRune(raw[off:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		off += size
	}
	return notText(raw, off, fmt.Sprintf("not valid UTF-8: byte 0x%02x at byte %d of the body", raw[off], off))
}

// notText is the error for what the body holds at byte off that is not text: it names the
// field whose string value holds it ("body" when it is in none).
func notText(raw []byte, off int, what string) error {
	field := fieldAt(raw, int64(off))
	if field == "" {
		field = "body"
	}
	msg := what + "; JSON text must be UTF-8, and is not changed to fit"
	if field == "body" || field == "payload" || strings.HasSuffix(field, ".payload") {
		msg += ": send bytes base64-encoded in payload_base64 instead of payload"
	}
	return fieldError{field, msg}
}

// loneSurrogate returns the offset of the first \u escape of a UTF-16 surrogate that is not
// half of a pair, or -1. JSON allows one, but it stands for no character: encoding/json
// would decode it as U+FFFD.
func loneSurrogate(raw []byte) int {
	hex4 := func(b []byte) (rune, bool) {
		if len(b) < 4 {
			return 0, false
		}
		n, err := strconv.ParseUint(string(b[:4]), 16, 16)
		return rune(n), err == nil
	}
	for i := bytes.IndexByte(raw, '\\'); i >= 0 && i+1 < len(raw); {
		next := i + 2 // past a two-byte escape (\\ included)
		if raw[i+1] == 'u' {
			if r, ok := hex4(raw[i+2:]); ok {
				next = i + 6
				switch {
				case 0xd800 <= r && r < 0xdc00:
					if r2, ok := hex4(raw[min(i+8, len(raw)):]); ok && bytes.HasPrefix(raw[i+6:], []byte(`\u`)) && 0xdc00 <= r2 && r2 < 0xe000 {
						next = i + 12
						break
					}
					return i
				case 0xdc00 <= r && r < 0xe000:
					return i
				}
			}
		}
		j := bytes.IndexByte(raw[next:], '\\')
		if j < 0 {
			break
		}
		i = next + j
	}
	return -1
}

// fieldAt names the field of a JSON text whose string value holds byte off ("payload",
// "messages[2].payload", "to_many[3]"), or "" when off is in no string value (in a key, or
// outside any string: the text is malformed there).
func fieldAt(raw []byte, off int64) string {
	type frame struct {
		array   bool
		key     string // object: the current member's name
		next    int    // array: the index of the next element
		wantKey bool   // object: the next string is a member's name
	}
	var stack []*frame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.array {
				fmt.Fprintf(&b, "[%d]", f.next-1)
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		}
		return b.String()
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		end := dec.InputOffset()
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if top != nil && !top.array && top.wantKey {
			if end > off {
				return "" // in a member's name
			}
			top.key, top.wantKey = tok.(string), false
			continue
		}
		// A value begins.
		if top != nil {
			if top.array {
				top.next++
			} else {
				top.wantKey = true
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{array: true})
		default:
			if end > off {
				if _, ok := tok.(string); ok {
					return path()
				}
				return ""
			}
		}
	}
}

// jsonKind names the kind of the JSON value raw begins with ("an object", "an array", ...),
// or "" when it begins with none.
func jsonKind(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return ""
	}
	switch c := raw[0]; {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	}
	return ""
}

// typeKind names the JSON kind a Go type is decoded from, for an error that names no Go type.
func typeKind(t reflect.Type) string {
	if t == nil {
		return "another kind of value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a JSON object"
	case reflect.Slice, reflect.Array:
		return "a JSON array"
	case reflect.String:
		return "a JSON string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a JSON integer in range"
	case reflect.Float32, reflect.Float64:
		return "a JSON number"
	}
	return "another kind of value"
}

// article reads a json.UnmarshalTypeError's Value ("array", "number 1.5", "bool") as the
// JSON it describes ("an array", "the number 1.5", "a boolean").
func article(value string) string {
	switch {
	case value == "array" || value == "object":
		return "an " + value
	case value == "bool":
		return "a boolean"
	case strings.HasPrefix(value, "number "):
		return "the " + value
	}
	return "a " + value
}

// singleLimit bounds a single send's body: the largest payload, base64-encoded, and room
// for the other fields (a topic may be up to 64 KiB).
func (r *Router) singleLimit() int64 { return int64(r.cfg.MaxPayload)*4/3 + 64<<10 }

// batchLimit bounds a batch's body: MaxBatch single sends, but never more than MaxBody
// (64 MiB by default; MaxBatch × the largest payload would be about 396 MiB). A batch that
// needs more must be split.
func (r *Router) batchLimit() int64 { return min(int64(r.cfg.MaxBatch)*r.singleLimit(), r.cfg.MaxBody) }

func (r *Router) handleSend(w http.ResponseWriter, req *http.Request) {
	var body Request
	if err := decode(w, req, r.sendLimit(), &body); err != nil {
		r.badRequest(w, err, nil)
		return
	}
	if body.ToMany != nil || body.Group != "" {
		r.handleFanout(w, req, body)
		return
	}
	m, err := r.cfg.validate(body)
	if err != nil {
		r.badRequest(w, err, nil)
		return
	}
	if !r.scopeAllows(w, req, "to", m.To) {
		return
	}
	wait, err := r.cfg.maxWait(body.MaxWait)
	if err != nil {
		r.badRequest(w, err, nil)
		return
	}
	out := r.Route(req.Context(), []Message{m}, wait)[0]
	if out.Err != nil {
		code, msg := sendError(out.Err)
		writeJSON(w, code, ErrorBody{Error: msg})
		return
	}
	writeJSON(w, http.StatusOK, out.Result)
}

func (r *Router) handleBatch(w http.ResponseWriter, req *http.Request) {
	var body BatchRequest
	if err := decode(w, req, r.batchLimit(), &body); err != nil {
		fe, index := batchItemError(err)
		r.badRequest(w, fe, index)
		return
	}
	if len(body.Messages) == 0 {
		r.badRequest(w, fieldError{"messages", "is empty"}, nil)
		return
	}
	if len(body.Messages) > r.cfg.MaxBatch {
		r.badRequest(w, fieldError{"messages", fmt.Sprintf("%d messages is over the batch maximum of %d", len(body.Messages), r.cfg.MaxBatch)}, nil)
		return
	}
	wait, err := r.cfg.maxWait(body.MaxWait)
	if err != nil {
		r.badRequest(w, err, nil)
		return
	}
	// Validate everything first: a bad item refuses the whole batch, nothing stored.
	msgs := make([]Message, len(body.Messages))
	for i, item := range body.Messages {
		if len(item.MaxWait) > 0 {
			r.badRequest(w, fieldError{"max_wait", "give max_wait for the whole batch, beside messages"}, &i)
			return
		}
		m, err := r.cfg.validate(item)
		if err != nil {
			r.badRequest(w, err, &i)
			return
		}
		msgs[i] = m
	}
	to := make([]string, len(msgs))
	for i, m := range msgs {
		to[i] = m.To
	}
	if !r.scopeAllowsAll(w, req, "messages", to) {
		return
	}
	items := r.SendBatch(req.Context(), msgs, wait)
	status := http.StatusOK
	for _, it := range items {
		if it.Error != "" {
			status = http.StatusMultiStatus
		}
		if it.Code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", retryAfter)
		}
	}
	writeJSON(w, status, struct {
		Results []BatchItem `json:"results"`
	}{items})
}

// batchItemError turns a decoding error naming a batch item's field ("messages[2].payload")
// into the batch's form: the item's field and its index.
func batchItemError(err error) (error, *int) {
	var fe fieldError
	if !errors.As(err, &fe) {
		return err, nil
	}
	rest, ok := strings.CutPrefix(fe.field, "messages[")
	if !ok {
		return err, nil
	}
	num, field, ok := strings.Cut(rest, "].")
	i, convErr := strconv.Atoi(num)
	if !ok || convErr != nil || field == "" {
		return err, nil
	}
	return fieldError{field, fe.msg}, &i
}

// SendBatch routes many messages (see Route) and answers each as the batch API does.
func (r *Router) SendBatch(ctx context.Context, msgs []Message, maxWait time.Duration) []BatchItem {
	out := r.Route(ctx, msgs, maxWait)
	items := make([]BatchItem, len(out))
	for i, o := range out {
		if o.Err != nil {
			code, msg := sendError(o.Err)
			items[i] = BatchItem{Error: msg, Code: code}
			continue
		}
		items[i] = BatchItem{Result: o.Result, Code: http.StatusOK}
	}
	return items
}

func (r *Router) handleClient(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	if err := inbox.ValidateClientID(id); err != nil {
		r.badRequest(w, fieldError{"id", err.Error()}, nil)
		return
	}
	if !r.scopeAllows(w, req, "id", id) {
		return
	}
	c, err := r.Lookup(req.Context(), id)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (r *Router) handleNodes(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Nodes any `json:"nodes"`
	}{r.members.Members()})
}

func (r *Router) handleHealth(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.StoreTimeout)
	defer cancel()
	h := struct {
		Ready bool   `json:"ready"`
		Store string `json:"store"`
		Nodes int    `json:"nodes"`
	}{Ready: true, Store: "ok", Nodes: len(r.members.Members())}
	if err := r.store.Ping(ctx); err != nil {
		h.Ready, h.Store = false, err.Error()
	}
	code := http.StatusOK
	if !h.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, h)
}

func (r *Router) badRequest(w http.ResponseWriter, err error, index *int) {
	r.metrics.refused.WithLabelValues("bad_request").Inc()
	var fe fieldError
	if errors.As(err, &fe) {
		code := http.StatusBadRequest
		if errors.As(err, new(mediaTypeError)) {
			code = http.StatusUnsupportedMediaType
		}
		writeJSON(w, code, ErrorBody{Error: fe.Error(), Field: fe.field, Index: index})
		return
	}
	writeJSON(w, http.StatusBadRequest, ErrorBody{Error: err.Error(), Index: index})
}

// sendError maps a Send failure to an HTTP status. The message was not accepted; when the
// store timed out it may still have been written, so the advice is to retry with the same
// id, which the mailbox recognises.
func sendError(err error) (int, string) {
	const retry = `, though it may have been stored: retry with the same "id" (a retry is not stored again while the first copy waits in the mailbox)`
	switch {
	case errors.Is(err, ErrRejected):
		return http.StatusRequestEntityTooLarge, "the client cannot take this message; not accepted: " + err.Error()
	case errors.Is(err, ErrUnsupported):
		return http.StatusNotImplemented, err.Error()
	case errors.Is(err, store.ErrTooManyCollapseKeys):
		return http.StatusInsufficientStorage, "too many collapse keys: the client's mailbox holds messages under the limit of distinct keys; not accepted: " + err.Error()
	case errors.Is(err, store.ErrMailboxFull):
		return http.StatusInsufficientStorage, "mailbox full: the client has too many undelivered messages; not accepted: " + err.Error()
	case errors.Is(err, store.ErrStoreFull):
		return http.StatusInsufficientStorage, "store full (out of memory or disk); not accepted: " + err.Error()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "timed out; not accepted" + retry + ": " + err.Error()
	}
	return http.StatusServiceUnavailable, "store unavailable; not accepted" + retry + ": " + err.Error()
}

// retryAfter is the Retry-After of every 503 (and of a batch answer with a 503 item): the
// store is unavailable or slow (the store fails calls at once while Redis is out of reach,
// and a Sentinel or Cluster failover takes a few seconds), so a sender should come back in
// about a second, with the same message ids.
const retryAfter = "1"

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	w.Header().Set("Content-Type", "application/json")
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}
