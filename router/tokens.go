package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/bearer"
)

// Tokens holds the bearer tokens the API accepts, from a file with one token per line, as
// `name token`, `name token clients=PREFIX` or just `token` (blank lines and lines
// starting with # are ignored). A token with clients=PREFIX is scoped: it may send to,
// read and manage only the clients whose id starts with PREFIX, and nothing that spans
// clients (groups, jobs, the receipts stream, nodes, the dashboard, metrics). The file is
// reloaded when it changes; a file that no longer parses keeps the old tokens. Safe for
// concurrent use.
type Tokens struct {
	path string
	log  *slog.Logger
	set  atomic.Pointer[tokenSet]
}

type tokenSet struct {
	sum    [32]byte // of the file, to notice changes
	hashes map[[32]byte]Token
}

// Token is one accepted token, by name, with its scope.
type Token struct {
	Name string
	// Prefix, when set, scopes the token to the client ids that start with it.
	Prefix string
}

// Scoped reports whether the token is limited to some clients.
func (t Token) Scoped() bool { return t.Prefix != "" }

// Allows reports whether the token may address client.
func (t Token) Allows(client string) bool { return strings.HasPrefix(client, t.Prefix) }

// MinTokenLen is the shortest token accepted in a tokens file.
const MinTokenLen = 16

// LoadTokens reads a tokens file.
func LoadTokens(path string, log *slog.Logger) (*Tokens, error) {
	if log == nil {
		log = slog.Default()
	}
	t := &Tokens{path: path, log: log.With("component", "api-tokens")}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// ParseTokens parses a tokens file's contents; errors name the line.
func ParseTokens(data []byte) (map[[32]byte]Token, error) {
	out := map[[32]byte]Token{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		name, tok, prefix := fmt.Sprintf("line %d", line), fields[0], ""
		switch len(fields) {
		case 1:
		case 2:
			name, tok = fields[0], fields[1]
		case 3:
			name, tok = fields[0], fields[1]
			p, ok := strings.CutPrefix(fields[2], "clients=")
			if !ok || p == "" {
				return nil, fmt.Errorf("line %d: third field %q: want clients=PREFIX (a client-id prefix the token is scoped to)", line, fields[2])
			}
			prefix = p
		default:
			return nil, fmt.Errorf("line %d: want `name token`, `name token clients=PREFIX` or `token`", line)
		}
		if len(tok) < MinTokenLen {
			return nil, fmt.Errorf("line %d: token for %s is %d characters; the minimum is %d", line, name, len(tok), MinTokenLen)
		}
		out[sha256.Sum256([]byte(tok))] = Token{Name: name, Prefix: prefix}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no tokens")
	}
	return out, nil
}

// Reload re-reads the file.
func (t *Tokens) Reload() error {
	data, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("api tokens: %w", err)
	}
	sum := sha256.Sum256(data)
	if cur := t.set.Load(); cur != nil && cur.sum == sum {
		return nil
	}
	hashes, err := ParseTokens(data)
	if err != nil {
		return fmt.Errorf("api tokens %s: %w", t.path, err)
	}
	t.set.Store(&tokenSet{sum: sum, hashes: hashes})
	return nil
}

// Watch reloads the file every interval until ctx ends.
func (t *Tokens) Watch(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			before := t.set.Load()
			if err := t.Reload(); err != nil {
				t.log.Error("api tokens file changed but is invalid; keeping the old tokens", "error", err)
			} else if t.set.Load() != before {
				t.log.Info("api tokens reloaded", "tokens", len(t.set.Load().hashes))
			}
		case <-ctx.Done():
			return
		}
	}
}

// Check returns the token presented in an Authorization: Bearer header.
func (t *Tokens) Check(header string) (Token, bool) {
	tok, ok := bearer.Token(header)
	if !ok {
		return Token{}, false
	}
	h := sha256.Sum256([]byte(tok))
	set := t.set.Load()
	// Comparing fixed-size hashes keeps the map lookup from leaking how much of a token
	// matched; the constant-time compare guards the last step.
	for k, info := range set.hashes {
		if subtle.ConstantTimeCompare(k[:], h[:]) == 1 {
			return info, true
		}
	}
	return Token{}, false
}

// mux matches requests to the API's routes (its handlers are never called through it).
func (r *Router) mux() *http.ServeMux {
	r.patternsOnce.Do(func() { r.patterns = patternMux(r.apiRoutes()) })
	return r.patterns
}

// tokenKey is the request context key of the token a request presented.
type tokenKey struct{}

// scopedRoutes are the endpoints a scoped token may use: those about named clients.
// Each checks every client it addresses with scopeAllows.
var scopedRoutes = map[string]bool{
	"POST /v1/messages": true, "POST /v1/messages/batch": true, "GET /v1/messages/{id}": true,
	"GET /v1/clients/{id}": true, "GET /v1/clients/{id}/mailbox": true,
	"DELETE /v1/clients/{id}/mailbox": true, "DELETE /v1/clients/{id}/mailbox/{msg}": true,
	"GET /v1/openapi.json": true,
}

// scopeAllows reports whether the request's token may address client (named by field);
// when not, it has answered 403.
func (r *Router) scopeAllows(w http.ResponseWriter, req *http.Request, field, client string) bool {
	tok, _ := req.Context().Value(tokenKey{}).(Token)
	if tok.Allows(client) {
		return true
	}
	r.metrics.refused.WithLabelValues("forbidden").Inc()
	writeJSON(w, http.StatusForbidden, ErrorBody{
		Error: fmt.Sprintf("token %s may address only clients whose id starts with %q, not %q", tok.Name, tok.Prefix, client),
		Field: field})
	return false
}

// scopeAllowsAll is scopeAllows for many clients; field names the offending one.
func (r *Router) scopeAllowsAll(w http.ResponseWriter, req *http.Request, field string, clients []string) bool {
	tok, _ := req.Context().Value(tokenKey{}).(Token)
	if !tok.Scoped() {
		return true
	}
	for i, c := range clients {
		if !tok.Allows(c) {
			r.metrics.refused.WithLabelValues("forbidden").Inc()
			writeJSON(w, http.StatusForbidden, ErrorBody{
				Error: fmt.Sprintf("token %s may address only clients whose id starts with %q, not %q", tok.Name, tok.Prefix, c),
				Field: fmt.Sprintf("%s[%d]", field, i)})
			return false
		}
	}
	return true
}

// requireToken wraps h so every request but GET /healthz needs a valid bearer token.
func (r *Router) requireToken(t *Tokens, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && req.URL.Path == "/healthz" {
			h.ServeHTTP(w, req)
			return
		}
		tok, ok := t.Check(req.Header.Get("Authorization"))
		if !ok {
			r.metrics.refused.WithLabelValues("unauthorized").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
			writeJSON(w, http.StatusUnauthorized, ErrorBody{Error: "missing or wrong bearer token (Authorization: Bearer <token>)"})
			return
		}
		if tok.Scoped() {
			if _, pattern := r.mux().Handler(req); !scopedRoutes[pattern] {
				if allow := allowedMethods(r.mux(), req); allow != nil && pattern == "" {
					methodNotAllowed(w, req, allow) // a path the API serves, with other methods
					return
				}
				r.metrics.refused.WithLabelValues("forbidden").Inc()
				writeJSON(w, http.StatusForbidden, ErrorBody{Error: fmt.Sprintf(
					"token %s is scoped to the clients whose id starts with %q: %s %s spans clients", tok.Name, tok.Prefix, req.Method, req.URL.Path)})
				return
			}
		}
		h.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), tokenKey{}, tok)))
	})
}

// AuthHandler is Handler behind bearer-token authentication with t.
func (r *Router) AuthHandler(t *Tokens) http.Handler { return r.requireToken(t, r.Handler()) }
