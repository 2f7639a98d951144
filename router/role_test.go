package router_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// TestStartServesAndCloseStops: a started router role serves its API and dashboard on the
// listener it was given, behind the tokens when given them, and Close stops serving, closes
// Done and may be called again.
func TestStartServesAndCloseStops(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	c := openCoord(t, memcoord.NewCluster())
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("test 0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := router.LoadTokens(path, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := router.Start(testenv.Context(t, 10*time.Second), router.DefaultConfig(),
		router.Deps{Coord: c, Store: st, Listener: l, Tokens: tokens, Logger: testenv.Logger(t)})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	base := "http://" + s.Addr().String()
	get := func(path, token string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/v1/dashboard", ""); code != http.StatusUnauthorized {
		t.Fatalf("GET /v1/dashboard without a token: %d, want 401", code)
	}
	if code := get("/v1/dashboard", "0123456789abcdef0123456789abcdef"); code != http.StatusOK {
		t.Fatalf("GET /v1/dashboard with a token: %d, want 200", code)
	}
	if code := get("/ui", ""); code != http.StatusOK {
		t.Fatalf("GET /ui: %d, want 200", code)
	}
	select {
	case <-s.Done():
		t.Fatalf("Done is closed while the role serves (%v)", s.Err())
	default:
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done is open after Close")
	}
	if err := s.Close(); err != nil || s.Err() != nil {
		t.Fatalf("second Close: %v, Err %v", err, s.Err())
	}
	http.DefaultClient.CloseIdleConnections()
	if resp, err := http.Get(base + "/ui"); err == nil {
		resp.Body.Close()
		t.Fatal("the listener still answers after Close")
	}
}

// TestStartRefusesBadConfig: an invalid configuration starts nothing.
func TestStartRefusesBadConfig(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := router.DefaultConfig()
	cfg.HTTP.MaxConnections = 0
	if _, err := router.Start(testenv.Context(t, 10*time.Second), cfg,
		router.Deps{Coord: openCoord(t, memcoord.NewCluster()), Store: openStore(t), Listener: l, Logger: testenv.Logger(t)}); err == nil {
		t.Fatal("Start accepted a config with no connections")
	}
}

// TestCloseEndsEventStreams: a role with a receipt event stream open closes at once
// (well within the shutdown timeout), behind the token like the rest of the API, and the
// stream's reader sees it end.
func TestCloseEndsEventStreams(t *testing.T) {
	t.Parallel()
	st := newReceiptStore(openStore(t))
	c := openCoord(t, memcoord.NewCluster())
	path := filepath.Join(t.TempDir(), "tokens")
	const token = "0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(path, []byte("test "+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := router.LoadTokens(path, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := router.Start(testenv.Context(t, 10*time.Second), router.DefaultConfig(),
		router.Deps{Coord: c, Store: st, Listener: l, Tokens: tokens, Logger: testenv.Logger(t)})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	url := "http://" + s.Addr().String() + "/v1/events"
	if resp, err := http.Get(url); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/events without a token: %v %v, want 401", resp.Status, err)
	} else {
		resp.Body.Close()
	}
	req, _ := http.NewRequestWithContext(testenv.Context(t, 30*time.Second), "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/events: %v %v", resp, err)
	}
	defer resp.Body.Close()
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v with a stream open", d)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Logf("the stream ended with %v", err)
	}
}
