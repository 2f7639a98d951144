package testenv

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Bridge is a dialer whose connections a test can cut, like etcd's TCP bridge: Cut closes
// every open connection and refuses new ones until Restore. It injects a real network
// partition between one client and its servers while the servers keep running.
type Bridge struct {
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

// ErrCut is returned by Dial while the bridge is cut.
var ErrCut = errors.New("bridge: connection cut by the test")

// Dial matches go-zookeeper's Dialer and net.DialTimeout.
func (b *Bridge) Dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	b.mu.Lock()
	cut := b.cut
	b.mu.Unlock()
	if cut {
		return nil, ErrCut
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		c.Close()
		return nil, ErrCut
	}
	if b.conns == nil {
		b.conns = map[net.Conn]struct{}{}
	}
	bc := &bridgeConn{Conn: c, b: b}
	b.conns[bc] = struct{}{}
	return bc, nil
}

// Cut closes every connection made through the bridge and refuses new ones.
func (b *Bridge) Cut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cut = true
	for c := range b.conns {
		c.(*bridgeConn).Conn.Close()
	}
	b.conns = nil
}

// Restore lets connections through again.
func (b *Bridge) Restore() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cut = false
}

type bridgeConn struct {
	net.Conn
	b *Bridge
}

func (c *bridgeConn) Close() error {
	c.b.mu.Lock()
	delete(c.b.conns, c)
	c.b.mu.Unlock()
	return c.Conn.Close()
}
