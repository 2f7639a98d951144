package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHTTPConn(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/echo":
			w.WriteHeader(http.StatusMultiStatus)
			_, _ = w.Write(body)
		case "/big": // larger than net/http's buffer: chunked
			for i := range 2000 {
				fmt.Fprintf(w, "line %04d\n", i)
			}
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = w.Write([]byte("bye"))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	h, err := newHTTPConn(srv.URL, "tok", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var resp bytes.Buffer
	ctx := context.Background()
	for i := range 5 {
		code, err := h.Post(ctx, "/echo", []byte(fmt.Sprintf(`{"n":%d}`, i)), &resp)
		if err != nil || code != http.StatusMultiStatus || resp.String() != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("echo %d: %d %q %v", i, code, resp.String(), err)
		}
	}
	code, err := h.Post(ctx, "/big", nil, &resp)
	if err != nil || code != 200 || strings.Count(resp.String(), "\n") != 2000 || !strings.HasSuffix(resp.String(), "line 1999\n") {
		t.Fatalf("big: %d %d bytes %v", code, resp.Len(), err)
	}
	if conns.Load() != 1 {
		t.Fatalf("%d connections for keep-alive requests, want 1", conns.Load())
	}
	if code, err = h.Post(ctx, "/close", nil, &resp); err != nil || resp.String() != "bye" {
		t.Fatalf("close: %d %q %v", code, resp.String(), err)
	}
	if code, err = h.Post(ctx, "/echo", []byte("again"), &resp); err != nil || resp.String() != "again" {
		t.Fatalf("after close: %d %q %v", code, resp.String(), err)
	}
	if conns.Load() != 2 {
		t.Fatalf("%d connections, want a new one after Connection: close", conns.Load())
	}
	// A server that went away: an error, then a fresh dial works again.
	srv.CloseClientConnections()
	if _, err := h.Post(ctx, "/echo", []byte("x"), &resp); err == nil {
		// The close may race the write; the next request must work either way.
		t.Log("request after the server closed the connection succeeded")
	}
	if _, err := h.Post(ctx, "/echo", []byte("y"), &resp); err != nil || resp.String() != "y" {
		t.Fatalf("redial: %q %v", resp.String(), err)
	}
	if _, err := newHTTPConn("https://x", "", time.Second); err == nil {
		t.Fatal("https accepted by the plain client")
	}
}
