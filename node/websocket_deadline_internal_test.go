package node

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWebSocketDeadlineDoesNotWaitForAWrite: mochi's reader sets the connection's deadline
// before every packet it reads. Over a WebSocket, setting it must not wait for a write under
// way to a client that is not reading, or reading (PUBACKs, DISCONNECT, EOF) stops behind it.
func TestWebSocketDeadlineDoesNotWaitForAWrite(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		<-release // a client that never reads
	}))
	defer srv.Close()
	defer close(release)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c := &wsConn{Conn: ws.NetConn(), ws: ws}

	// Writes until the socket buffers are full and a write blocks (bounded by its deadline).
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	writing := make(chan error, 1)
	go func() {
		chunk := make([]byte, 1<<20)
		for range 256 {
			if _, err := c.Write(chunk); err != nil {
				writing <- err
				return
			}
		}
		writing <- nil
	}()
	// Wait until a write is blocked: the writer holds the write lock.
	deadline := time.Now().Add(5 * time.Second)
	for c.wmu.TryLock() {
		c.wmu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("no write blocked: the test tests nothing")
		}
		time.Sleep(time.Millisecond)
	}
	set := make(chan struct{})
	go func() {
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		close(set)
	}()
	select {
	case <-set:
	case err := <-writing:
		t.Fatalf("SetDeadline waited for the blocked write, which ended with %v", err)
	case <-time.After(time.Second):
		t.Fatal("SetDeadline waited for a write to a client that does not read")
	}
}
