package node

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// MQTT over WebSocket (MQTT 5.0 §6, 3.1.1 §6): the WebSocket carries the MQTT byte stream
// in binary messages, split anywhere. The node does not use mochi's WebSocket listener:
// it runs its own http.Server on an address it binds itself, so the node could not wrap its
// accept loop, and nothing would bound a connection before its CONNECT (no pending caps, no
// connect deadline, no CONNECT size check, no PROXY header). Instead the node's own
// listener accepts the TCP connection, applies every pre-authentication limit, reads the
// PROXY header and does the TLS handshake as for MQTT over TCP, and then upgrades the
// connection here, on the connection's goroutine and under the same connect deadline.

// wsSubprotocols are the subprotocols the node accepts: "mqtt" (3.1.1 and 5.0), and
// "mqttv3.1" that MQTT 3.1 clients (MQTT.js with protocolVersion 3) still offer.
var wsSubprotocols = []string{"mqtt", "mqttv3.1"}

// wsMaxRequest bounds the HTTP upgrade request (request line and headers).
const wsMaxRequest = 8 << 10

// errWSNoSubprotocol refuses an upgrade that offers no MQTT subprotocol ([MQTT-6.0.0-3]).
var errWSNoSubprotocol = errors.New("the client offered no MQTT WebSocket subprotocol")

var wsUpgrader = websocket.Upgrader{
	Subprotocols: wsSubprotocols,
	// Its own read buffer, so reads after the upgrade do not go through the request's
	// size-limited reader; small, since mochi's reader buffers again above it and a larger
	// frame is read past it. Write buffers come from a pool only while a message is being
	// written: an idle connection holds none (4 KiB less each).
	ReadBufferSize:  512,
	WriteBufferSize: 4096,
	WriteBufferPool: &sync.Pool{},
	// Any origin: a browser on any site may connect. MQTT authenticates with the CONNECT's
	// credentials, never with cookies or other ambient credentials a foreign page could
	// borrow, so there is nothing for an origin check to protect.
	CheckOrigin: func(*http.Request) bool { return true },
}

// upgradeWebSocket reads the HTTP upgrade request from conn, answers it, and returns the
// connection as the MQTT byte stream it carries. The caller's deadline bounds it; the
// upgrade clears conn's deadlines, so the caller sets them again.
func upgradeWebSocket(conn net.Conn) (net.Conn, error) {
	br := bufio.NewReaderSize(&io.LimitedReader{R: conn, N: wsMaxRequest}, 1024)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, fmt.Errorf("read upgrade request: %w", err)
	}
	w := &hijackWriter{conn: conn, br: br, header: http.Header{}}
	if !offersMQTT(req) {
		http.Error(w, "MQTT over WebSocket needs the subprotocol mqtt", http.StatusBadRequest)
		return nil, errWSNoSubprotocol
	}
	ws, err := wsUpgrader.Upgrade(w, req, nil)
	if err != nil {
		return nil, err
	}
	return &wsConn{Conn: conn, ws: ws}, nil
}

func offersMQTT(req *http.Request) bool {
	for _, p := range websocket.Subprotocols(req) {
		for _, want := range wsSubprotocols {
			if p == want {
				return true
			}
		}
	}
	return false
}

// hijackWriter is the http.ResponseWriter of one upgrade request read from a bare
// connection: it writes an error answer straight to the connection and hands the
// connection over (Hijack) for the upgrade's answer.
type hijackWriter struct {
	conn   net.Conn
	br     *bufio.Reader
	header http.Header
	wrote  bool
}

func (w *hijackWriter) Header() http.Header { return w.header }

func (w *hijackWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.header.Set("Connection", "close")
	bw := bufio.NewWriter(w.conn)
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	_ = w.header.Write(bw)
	_, _ = bw.WriteString("\r\n")
	_ = bw.Flush()
}

func (w *hijackWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.conn.Write(b)
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.wrote = true
	return w.conn, bufio.NewReadWriter(w.br, bufio.NewWriterSize(w.conn, 512)), nil
}

// wsConn is the MQTT byte stream of a WebSocket connection: reads run through the binary
// messages as one stream; each write is one binary message. Addresses and read deadlines
// are the connection's beneath; write deadlines are the WebSocket's, which applies them to
// every frame it writes.
type wsConn struct {
	net.Conn // beneath the WebSocket: addresses, read deadline, Close
	ws       *websocket.Conn

	r   io.Reader  // the message being read; only mochi's reader goroutine reads
	wmu sync.Mutex // gorilla allows one writer at a time (mochi's, the node's sender)

	// The write deadline is kept here and given to gorilla by the writer, under wmu:
	// setting it must not wait for a write under way (mochi's reader sets the deadline
	// before every packet it reads, and a write to a slow client would stall reading).
	dmu      sync.Mutex
	deadline time.Time
}

// errWSText ends a connection that sent a text message ([MQTT-6.0.0-1]).
var errWSText = errors.New("websocket: text message on an MQTT connection")

func (c *wsConn) Read(b []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errWSText
			}
			c.r = r
		}
		n, err := c.r.Read(b)
		if errors.Is(err, io.EOF) {
			c.r = nil // the message ended; the stream goes on in the next one
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.dmu.Lock()
	d := c.deadline
	c.dmu.Unlock()
	_ = c.ws.SetWriteDeadline(d)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	_ = c.SetWriteDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.deadline = t
	return nil
}
