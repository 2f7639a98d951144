package node

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// AuthenticateForTest runs the credential check OnConnect runs (authenticate, and
// refuseAuthLimit for a limit refusal) for a CONNECT from remote with protocol version
// version, and returns the identity's method ("" when refused), the bytes written to the
// client (a limit refusal's CONNACK) and the error.
func (n *Node) AuthenticateForTest(remote net.IP, version byte, user, pass, id string) (string, []byte, error) {
	conn := &recordingConn{remote: &net.TCPAddr{IP: remote, Port: 40000}}
	cl := n.mqtt.NewClient(conn, "mqtt", id, false)
	cl.Properties.ProtocolVersion = version
	cl.Properties.Username = []byte(user)
	pk := packets.Packet{Connect: packets.ConnectParams{Password: []byte(pass), Username: []byte(user)}}
	ident, err := n.authenticate(cl, pk)
	if err != nil {
		if errors.Is(err, errAuthLimited) {
			_ = n.refuseAuthLimit(cl, err)
		}
		return "", conn.written(), err
	}
	return ident.Method, conn.written(), nil
}

// recordingConn is a client connection that records what is written to it.
type recordingConn struct {
	net.Conn
	remote net.Addr
	mu     sync.Mutex
	out    []byte
}

func (c *recordingConn) RemoteAddr() net.Addr { return c.remote }
func (c *recordingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, b...)
	return len(b), nil
}
func (c *recordingConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *recordingConn) Close() error                     { return nil }
func (c *recordingConn) SetDeadline(time.Time) error      { return nil }
func (c *recordingConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recordingConn) SetWriteDeadline(time.Time) error { return nil }
func (c *recordingConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.out...)
}
