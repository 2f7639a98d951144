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
)

// Tokens holds the bearer tokens the API accepts, from a file with one token per line, as
// `name token` or just `token` (blank lines and lines starting with # are ignored). It is
// reloaded when the file changes; a file that no longer parses keeps the old tokens.
// Safe for concurrent use.
type Tokens struct {
	path string
	log  *slog.Logger
	set  atomic.Pointer[tokenSet]
}

type tokenSet struct {
	sum    [32]byte // of the file, to notice changes
	hashes map[[32]byte]string
}

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
func ParseTokens(data []byte) (map[[32]byte]string, error) {
	out := map[[32]byte]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		name, tok := fmt.Sprintf("line %d", line), fields[0]
		switch len(fields) {
		case 1:
		case 2:
			name, tok = fields[0], fields[1]
		default:
			return nil, fmt.Errorf("line %d: want `name token` or `token`", line)
		}
		if len(tok) < MinTokenLen {
			return nil, fmt.Errorf("line %d: token for %s is %d characters; the minimum is %d", line, name, len(tok), MinTokenLen)
		}
		out[sha256.Sum256([]byte(tok))] = name
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

// Check returns the name of the token presented in an Authorization: Bearer header.
func (t *Tokens) Check(header string) (string, bool) {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || tok == "" {
		return "", false
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	set := t.set.Load()
	// Comparing fixed-size hashes keeps the map lookup from leaking how much of a token
	// matched; the constant-time compare guards the last step.
	for k, name := range set.hashes {
		if subtle.ConstantTimeCompare(k[:], h[:]) == 1 {
			return name, true
		}
	}
	return "", false
}

// requireToken wraps h so every request but GET /healthz needs a valid bearer token.
func (r *Router) requireToken(t *Tokens, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && req.URL.Path == "/healthz" {
			h.ServeHTTP(w, req)
			return
		}
		if _, ok := t.Check(req.Header.Get("Authorization")); !ok {
			r.metrics.refused.WithLabelValues("unauthorized").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
			writeJSON(w, http.StatusUnauthorized, ErrorBody{Error: "missing or wrong bearer token (Authorization: Bearer <token>)"})
			return
		}
		h.ServeHTTP(w, req)
	})
}

// AuthHandler is Handler behind bearer-token authentication with t.
func (r *Router) AuthHandler(t *Tokens) http.Handler { return r.requireToken(t, r.Handler()) }
