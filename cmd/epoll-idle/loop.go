//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	maxPacket      = 64 << 10 // larger packets close the connection
	connectTimeout = 10 * time.Second
	tick           = 100 * time.Millisecond // how often the loop looks at the clock and at close
)

// conn is all the state an idle connection has here: no goroutine, no buffer. A packet
// that arrives in pieces is kept in pending until it is whole, and only then.
type conn struct {
	fd        int32
	keepalive uint16 // seconds; 0: none
	version   byte   // 0 until CONNECT
	lastRead  int64  // the loop's clock (ns since start) at the last packet
	pending   []byte // an incomplete packet
	id        string
	inbox     string // the first filter subscribed: where a directed message would go
}

// server is one epoll loop over the listening socket and every connection.
type server struct {
	addr   net.Addr
	lfd    int
	epfd   int
	conns  map[int32]*conn
	buf    []byte // one read buffer, shared by every connection
	start  time.Time
	closed atomic.Bool
	// connected counts connections past CONNECT (read by tests).
	connected atomic.Int64
}

// listen binds addr (non-blocking) and sets up the loop; serve runs it.
func listen(addr string) (*server, error) {
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return nil, err
	}
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			syscall.Close(lfd)
		}
	}()
	if err := syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return nil, fmt.Errorf("setsockopt: %w", err)
	}
	sa := &syscall.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	if err := syscall.Bind(lfd, sa); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	if err := syscall.Listen(lfd, 4096); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	bound, err := syscall.Getsockname(lfd)
	if err != nil {
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	b4 := bound.(*syscall.SockaddrInet4)
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, lfd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(lfd)}); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	ok = true
	return &server{
		addr: &net.TCPAddr{IP: net.IP(b4.Addr[:]), Port: b4.Port},
		lfd:  lfd, epfd: epfd, conns: map[int32]*conn{}, buf: make([]byte, 64<<10), start: time.Now(),
	}, nil
}

// close makes serve return within a tick.
func (s *server) close() { s.closed.Store(true) }

func (s *server) now() int64 { return int64(time.Since(s.start)) }

// serve runs the loop until close; then every connection is closed.
func (s *server) serve() error {
	defer func() {
		for fd := range s.conns {
			syscall.Close(int(fd))
		}
		syscall.Close(s.lfd)
		syscall.Close(s.epfd)
	}()
	events := make([]syscall.EpollEvent, 256)
	lastSweep := s.now()
	for !s.closed.Load() {
		n, err := syscall.EpollWait(s.epfd, events, int(tick/time.Millisecond))
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:max(n, 0)] {
			if int(ev.Fd) == s.lfd {
				s.accept()
				continue
			}
			if c := s.conns[ev.Fd]; c != nil {
				s.readable(c)
			}
		}
		if now := s.now(); now-lastSweep >= int64(time.Second) {
			lastSweep = now
			s.sweep(now)
		}
	}
	return nil
}

// accept takes every waiting connection.
func (s *server) accept() {
	for range 1024 { // bounded: the loop comes back while more wait
		fd, _, err := syscall.Accept4(s.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or out of descriptors: the next readiness tries again
		}
		c := &conn{fd: int32(fd), lastRead: s.now()}
		if err := syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
			syscall.Close(fd)
			continue
		}
		s.conns[c.fd] = c
	}
}

// sweep closes connections past their keep-alive (1.5×) or without CONNECT in time.
func (s *server) sweep(now int64) {
	for _, c := range s.conns {
		switch {
		case c.version == 0 && now-c.lastRead > int64(connectTimeout):
			s.drop(c)
		case c.keepalive > 0 && now-c.lastRead > int64(c.keepalive)*int64(time.Second)*3/2:
			s.drop(c)
		}
	}
}

func (s *server) drop(c *conn) {
	if s.conns[c.fd] != c {
		return
	}
	delete(s.conns, c.fd)
	if c.version != 0 {
		s.connected.Add(-1)
	}
	_ = syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_DEL, int(c.fd), nil)
	syscall.Close(int(c.fd))
}

// readable reads what one connection sent (level-triggered: what is left comes back).
func (s *server) readable(c *conn) {
	n, err := syscall.Read(int(c.fd), s.buf)
	if n <= 0 {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
			return
		}
		s.drop(c)
		return
	}
	data := s.buf[:n]
	if c.pending != nil {
		c.pending = append(c.pending, data...)
		data = c.pending
	}
	rest, ok := s.packets(c, data)
	if !ok {
		s.drop(c)
		return
	}
	switch {
	case len(rest) == 0:
		c.pending = nil
	case c.pending != nil && &rest[0] == &c.pending[len(c.pending)-len(rest)]:
		c.pending = append(c.pending[:0], rest...)
	default:
		c.pending = append([]byte(nil), rest...)
	}
}

// packets handles every whole packet in data and returns what is left of an incomplete
// one; false means the connection must be closed.
func (s *server) packets(c *conn, data []byte) ([]byte, bool) {
	for len(data) > 0 {
		size, hdr, ok := remaining(data)
		if !ok {
			return data, len(data) < 5 // an incomplete length, or a malformed one
		}
		if size > maxPacket {
			return nil, false
		}
		if len(data) < hdr+size {
			return data, true
		}
		if !s.packet(c, data[0], data[hdr:hdr+size]) {
			return nil, false
		}
		c.lastRead = s.now()
		data = data[hdr+size:]
	}
	return nil, true
}

// remaining decodes a fixed header's remaining length: the length, the header's size,
// and whether it was complete.
func remaining(b []byte) (int, int, bool) {
	size, mult := 0, 1
	for i := 1; i < len(b) && i <= 4; i++ {
		size += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return size, i + 1, true
		}
		mult *= 128
	}
	return 0, 0, false
}

// packet handles one packet; false closes the connection.
func (s *server) packet(c *conn, first byte, body []byte) bool {
	typ := first >> 4
	if c.version == 0 && typ != 1 {
		return false // [MQTT-3.1.0-1]: CONNECT first
	}
	switch typ {
	case 1: // CONNECT
		if c.version != 0 {
			return false // [MQTT-3.1.0-2]
		}
		return s.connect(c, body)
	case 3: // PUBLISH
		qos := first >> 1 & 3
		if qos == 0 {
			return true
		}
		if qos > 1 || len(body) < 2 {
			return false // the prototype takes QoS 0 and 1 only
		}
		tl := int(body[0])<<8 | int(body[1])
		if len(body) < 2+tl+2 {
			return false
		}
		pid := body[2+tl : 2+tl+2]
		return s.write(c, []byte{0x40, 2, pid[0], pid[1]})
	case 4: // PUBACK
		return true
	case 8: // SUBSCRIBE
		return s.subscribe(c, body)
	case 10: // UNSUBSCRIBE
		if len(body) < 2 {
			return false
		}
		if c.version == 5 {
			return s.write(c, []byte{0xb0, 4, body[0], body[1], 0, 0})
		}
		return s.write(c, []byte{0xb0, 2, body[0], body[1]})
	case 12: // PINGREQ
		return s.write(c, []byte{0xd0, 0})
	case 14: // DISCONNECT
		return false
	default:
		return false
	}
}

// connect reads the protocol version, keep-alive and client id, and accepts.
func (s *server) connect(c *conn, b []byte) bool {
	if len(b) < 10 || b[0] != 0 || b[1] != 4 || string(b[2:6]) != "MQTT" {
		return false
	}
	version := b[6]
	if version != 4 && version != 5 {
		return false
	}
	c.keepalive = uint16(b[8])<<8 | uint16(b[9])
	b = b[10:]
	if version == 5 {
		plen, hdr, ok := varint(b)
		if !ok || len(b) < hdr+plen {
			return false
		}
		b = b[hdr+plen:]
	}
	if len(b) < 2 || len(b) < 2+(int(b[0])<<8|int(b[1])) {
		return false
	}
	c.id = string(b[2 : 2+(int(b[0])<<8|int(b[1]))])
	c.version = version
	s.connected.Add(1)
	if version == 5 {
		return s.write(c, []byte{0x20, 3, 0, 0, 0})
	}
	return s.write(c, []byte{0x20, 2, 0, 0})
}

// subscribe grants every filter at its QoS, at most 1, and remembers the first.
func (s *server) subscribe(c *conn, b []byte) bool {
	if len(b) < 2 {
		return false
	}
	ack := []byte{0x90, 0, b[0], b[1]}
	b = b[2:]
	if c.version == 5 {
		plen, hdr, ok := varint(b)
		if !ok || len(b) < hdr+plen {
			return false
		}
		b = b[hdr+plen:]
		ack = append(ack, 0)
	}
	for len(b) > 0 {
		if len(b) < 3 {
			return false
		}
		fl := int(b[0])<<8 | int(b[1])
		if len(b) < 2+fl+1 {
			return false
		}
		if c.inbox == "" {
			c.inbox = string(b[2 : 2+fl])
		}
		ack = append(ack, min(b[2+fl]&3, 1))
		b = b[2+fl+1:]
	}
	if len(ack) > 127+2 {
		return false // more filters than the prototype answers in a one-byte length
	}
	ack[1] = byte(len(ack) - 2)
	return s.write(c, ack)
}

// varint decodes an MQTT variable byte integer at the start of b.
func varint(b []byte) (int, int, bool) {
	v, mult := 0, 1
	for i := 0; i < len(b) && i < 4; i++ {
		v += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return v, i + 1, true
		}
		mult *= 128
	}
	return 0, 0, false
}

// write sends a small answer whole. An answer that does not fit in the socket's send
// buffer closes the connection: the prototype keeps no output buffers (a real layer would
// queue it and wait for EPOLLOUT).
func (s *server) write(c *conn, b []byte) bool {
	n, err := syscall.Write(int(c.fd), b)
	return err == nil && n == len(b)
}
