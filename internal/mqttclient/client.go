// Package mqttclient is a small MQTT 3.1.1/5.0 client on raw TCP with mochi's packet codec,
// so it speaks exactly what the nodes parse. It serves two users that must not be what they
// measure: the load generator (bench), whose hot paths (reading a PUBLISH, queueing one)
// allocate nothing, and the monitor's probe, which connects, pings, subscribes and sends
// itself one message. It is not a general-purpose client: TLS only as a transport (for
// the connection storm beside other brokers' TLS), no session resumption, no
// retransmission; a test that needs those uses paho (internal/testenv).
package mqttclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	proxyproto "github.com/pires/go-proxyproto"
)

// Options configure a Client.
type Options struct {
	// ID is the MQTT client identifier.
	ID string
	// Version is the MQTT protocol version: 4 (3.1.1) or 5.
	Version byte
	// KeepAlive is the keep-alive interval in seconds; the client pings at half of it once
	// started. 0 disables keep-alive.
	KeepAlive uint16
	// SessionExpiry is the MQTT 5 session expiry interval (seconds); 0 ends the session on
	// disconnect.
	SessionExpiry uint32
	// MaxInflight bounds the client's own unacknowledged QoS 1 publishes (default 64).
	MaxInflight int
	// Username and Password, when set, are sent in CONNECT.
	Username, Password string
	// LocalAddr, when set, is the source IP address to connect from (e.g. one of
	// 127.0.0.0/8, to spread a storm over many source addresses).
	LocalAddr string
	// ProxyLocal sends a PROXY protocol v2 header with the LOCAL command first, as a load
	// balancer's own health check does: a node that requires the PROXY protocol then
	// keeps the connection's own address (which it must trust) instead of closing it.
	ProxyLocal bool
	// TLS, when set, makes the connection TLS with this configuration (its ServerName, if
	// empty, is the host of the address dialled); the handshake is bounded by Dial's ctx.
	TLS *tls.Config
	// ReadBufferSize is the read buffer's size (default 16 KiB); a packet larger than it
	// is read into a separate buffer.
	ReadBufferSize int
	// OnMessage is called for each PUBLISH received, on the client's reader goroutine, one
	// call at a time. m and what it points into are valid only during the call. QoS 1
	// messages are acknowledged after it returns.
	OnMessage func(m *Message)
	// OnPuback is called when a QoS 1 publish of this client is acknowledged, on the reader
	// goroutine, with the reason code (0 for success; always 0 for MQTT 3.1.1).
	OnPuback func(packetID uint16, reason byte)
}

// Message is a received PUBLISH. Topic, Payload and ID alias the client's read buffer.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Dup      bool
	PacketID uint16
	// ID is the value of the "sb-id" user property (MQTT 5 only): a Switchboard router's
	// message id.
	ID string
}

// Client is one MQTT connection. Dial does the handshake synchronously; Ping and Subscribe
// before Start are synchronous too. Start runs a reader goroutine (acknowledging QoS 1
// messages) and a writer goroutine that coalesces everything queued since its last write
// into one write, so a busy client makes one system call for many packets and an idle one
// answers at once.
//
// Publish may be called from any number of goroutines after Start. Close is idempotent.
type Client struct {
	opts Options
	conn net.Conn
	r    *bufio.Reader

	// Read side, owned by the reader goroutine (or the caller before Start).
	body []byte
	in   packets.Packet
	msg  Message
	ack  bytes.Buffer

	// Write side.
	wmu      sync.Mutex
	wcond    *sync.Cond // signalled when pending shrinks or the client ends
	pending  []byte     // packets queued for the writer
	spare    []byte
	writing  bool // a goroutine is writing to conn (the writer, or the reader's acks)
	wake     chan struct{}
	lastSend time.Time
	enc      bytes.Buffer // scratch for encoding, guarded by wmu

	// QoS 1 publishes in flight.
	slots  chan struct{}
	imu    sync.Mutex
	nextID uint16
	inuse  map[uint16]bool

	started   bool
	done      chan struct{}
	closeOnce sync.Once
	errOnce   sync.Once
	err       error
	wg        sync.WaitGroup
}

// maxPacket bounds what the client reads.
const maxPacket = 4 << 20

// maxPending bounds the bytes queued for the writer before Publish blocks.
const maxPending = 1 << 20

// ErrClosed is returned by calls on a closed client.
var ErrClosed = errors.New("mqtt client closed")

// Dial connects to addr and completes CONNECT/CONNACK. ctx bounds the handshake only.
func Dial(ctx context.Context, addr string, o Options) (*Client, error) {
	if o.Version == 0 {
		o.Version = 4
	}
	if o.Version != 4 && o.Version != 5 {
		return nil, fmt.Errorf("mqtt version %d: want 4 or 5", o.Version)
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 64
	}
	if o.ReadBufferSize <= 0 {
		o.ReadBufferSize = 16 << 10
	}
	var d net.Dialer
	if o.LocalAddr != "" {
		ip := net.ParseIP(o.LocalAddr)
		if ip == nil {
			return nil, fmt.Errorf("source address %q is not an IP address", o.LocalAddr)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	if o.ProxyLocal {
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetWriteDeadline(dl)
		}
		h := proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
		if _, err := h.WriteTo(conn); err != nil {
			conn.Close()
			return nil, fmt.Errorf("send PROXY header to %s: %w", addr, err)
		}
	}
	if o.TLS != nil {
		cfg := o.TLS
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	c := &Client{
		opts: o,
		conn: conn,
		r:    bufio.NewReaderSize(conn, o.ReadBufferSize),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	c.wcond = sync.NewCond(&c.wmu)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: o.Version,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: o.KeepAlive, ClientIdentifier: o.ID,
		},
	}
	if o.Username != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(o.Username)
	}
	if o.Password != "" {
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(o.Password)
	}
	if o.Version == 5 && o.SessionExpiry > 0 {
		pk.Properties.SessionExpiryInterval = o.SessionExpiry
		pk.Properties.SessionExpiryIntervalFlag = true
	}
	if err := c.writeSync(&pk); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	ack, err := c.readSync(packets.Connack)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("CONNACK from %s: %w", addr, err)
	}
	if ack.ReasonCode != 0 {
		conn.Close()
		return nil, fmt.Errorf("CONNACK from %s: refused with reason %#x", addr, ack.ReasonCode)
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

// Subscribe subscribes to filter at qos and waits for the SUBACK. It must be called before
// Start.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte) error {
	if c.started {
		return errors.New("subscribe after start")
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(dl)
		defer c.conn.SetDeadline(time.Time{})
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    1,
		Filters:     packets.Subscriptions{{Filter: filter, Qos: qos}},
	}
	if err := c.writeSync(&pk); err != nil {
		return fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	sa, err := c.readSync(packets.Suback)
	if err != nil {
		return fmt.Errorf("SUBACK: %w", err)
	}
	if len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] > 2 {
		return fmt.Errorf("subscribe %s refused: reason codes %v", filter, sa.ReasonCodes)
	}
	return nil
}

// Ping sends PINGREQ and waits for the PINGRESP, bounded by ctx. It must be called before
// Start (after it, the writer pings on its own when keep-alive asks).
func (c *Client) Ping(ctx context.Context) error {
	if c.started {
		return errors.New("ping after start")
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(dl)
		defer c.conn.SetDeadline(time.Time{})
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}
	if err := c.writeSync(&pk); err != nil {
		return fmt.Errorf("send PINGREQ: %w", err)
	}
	if _, err := c.readSync(packets.Pingresp); err != nil {
		return fmt.Errorf("PINGRESP: %w", err)
	}
	return nil
}

// IdleClosed reports, without blocking, whether the broker closed the connection of a
// client that was never started (a connection storm holds many such clients): a read with
// a deadline a millisecond away sees EOF at once. A closed client is ended, as if its reader
// had seen the EOF.
func (c *Client) IdleClosed() bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.r.Peek(1)
	_ = c.conn.SetReadDeadline(time.Time{})
	if err != nil && !isTimeout(err) {
		c.errOnce.Do(func() { c.err = err; close(c.done) })
		return true
	}
	return false
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// Start starts the reader and writer goroutines.
func (c *Client) Start() {
	c.started = true
	c.slots = make(chan struct{}, c.opts.MaxInflight)
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.readLoop() }()
	go func() { defer c.wg.Done(); c.writeLoop() }()
}

// Done is closed when the client has ended (Close, or a read or write error).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the client ended; nil while it runs and after a clean Close.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// fail ends the client with err (the first error wins).
func (c *Client) fail(err error) {
	c.errOnce.Do(func() {
		c.err = err
		c.wmu.Lock()
		close(c.done)
		c.wcond.Broadcast()
		c.wmu.Unlock()
		c.conn.Close()
	})
}

// Close sends DISCONNECT (when started, after what is queued), closes the connection and
// waits for the client's goroutines. Idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if !c.started {
			var b bytes.Buffer
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: c.opts.Version}
			if pk.DisconnectEncode(&b) == nil {
				_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = c.conn.Write(b.Bytes())
			}
			c.errOnce.Do(func() { close(c.done) })
			c.conn.Close()
			return
		}
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}
		if c.queue(&pk) == nil {
			c.flushWait(time.Second)
		}
		c.fail(nil)
		c.wg.Wait()
	})
	return nil
}

// flushWait waits up to d for the writer to send what is queued.
func (c *Client) flushWait(d time.Duration) {
	deadline := time.Now().Add(d)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for len(c.pending) > 0 || c.writing {
		select {
		case <-c.done:
			return
		default:
		}
		if time.Now().After(deadline) {
			return
		}
		c.wmu.Unlock()
		time.Sleep(time.Millisecond)
		c.wmu.Lock()
	}
}

// Publish queues a PUBLISH. At QoS 1 it first waits for one of MaxInflight slots, freed
// when the broker acknowledges a publish (OnPuback is told). The returned packet id is 0 at
// QoS 0.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, qos byte) (uint16, error) {
	return c.PublishTracked(ctx, topic, payload, qos, nil)
}

// PublishTracked is Publish that calls track with the packet id (QoS 1) once it is taken
// and before the packet is queued, so the caller can record it before its PUBACK can
// arrive. track must not block.
func (c *Client) PublishTracked(ctx context.Context, topic string, payload []byte, qos byte, track func(id uint16)) (uint16, error) {
	var id uint16
	if qos > 0 {
		select {
		case c.slots <- struct{}{}:
		case <-c.done:
			return 0, ErrClosed
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		id = c.takeID()
		if track != nil {
			track(id)
		}
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		PacketID:    id,
		Payload:     payload,
	}
	if err := c.queue(&pk); err != nil {
		if qos > 0 {
			c.releaseID(id)
		}
		return 0, err
	}
	return id, nil
}

// takeID returns a packet id not in flight. The caller holds a slot, so one is free.
func (c *Client) takeID() uint16 {
	c.imu.Lock()
	defer c.imu.Unlock()
	if c.inuse == nil {
		c.inuse = make(map[uint16]bool, c.opts.MaxInflight)
	}
	for {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if !c.inuse[c.nextID] {
			c.inuse[c.nextID] = true
			return c.nextID
		}
	}
}

// releaseID frees id and its slot; false if id was not in flight.
func (c *Client) releaseID(id uint16) bool {
	c.imu.Lock()
	ok := c.inuse[id]
	delete(c.inuse, id)
	c.imu.Unlock()
	if ok {
		<-c.slots
	}
	return ok
}

// queue encodes pk onto the writer's pending buffer and wakes the writer.
func (c *Client) queue(pk *packets.Packet) error {
	pk.ProtocolVersion = c.opts.Version
	c.wmu.Lock()
	for len(c.pending) >= maxPending {
		select {
		case <-c.done:
			c.wmu.Unlock()
			return ErrClosed
		default:
		}
		c.wcond.Wait()
	}
	select {
	case <-c.done:
		c.wmu.Unlock()
		return ErrClosed
	default:
	}
	c.enc.Reset()
	err := encode(pk, &c.enc)
	if err == nil {
		c.pending = append(c.pending, c.enc.Bytes()...)
	}
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("encode packet type %d: %w", pk.FixedHeader.Type, err)
	}
	c.wakeWriter()
	return nil
}

// writeLoop writes whatever is pending in one write, and pings when keep-alive asks.
func (c *Client) writeLoop() {
	var tick <-chan time.Time
	if c.opts.KeepAlive > 0 {
		t := time.NewTicker(time.Duration(c.opts.KeepAlive) * time.Second / 2)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		case <-tick:
			c.wmu.Lock()
			// Ping unless something went out lately: a broker drops a client silent for 1.5
			// keep-alive intervals, and ticks jitter.
			idle := time.Since(c.lastSend) >= time.Duration(c.opts.KeepAlive)*time.Second/4
			c.wmu.Unlock()
			if idle {
				pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}
				_ = c.queue(&pk)
			}
			continue
		}
		c.wmu.Lock()
		if c.writing || len(c.pending) == 0 {
			// The reader is writing its acknowledgements; it wakes us when it is done.
			c.wmu.Unlock()
			continue
		}
		out := c.pending
		c.pending, c.spare = c.spare[:0], out
		c.writing = true
		c.lastSend = time.Now()
		c.wcond.Broadcast()
		c.wmu.Unlock()
		_, err := c.conn.Write(out)
		c.wmu.Lock()
		c.spare = out[:0]
		c.writing = false
		more := len(c.pending) > 0
		c.wmu.Unlock()
		if err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			return
		}
		if more {
			c.wakeWriter()
		}
	}
}

func (c *Client) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// readLoop reads packets until the connection ends, acknowledging QoS 1 messages after
// OnMessage. Acknowledgements of everything already buffered are queued together.
func (c *Client) readLoop() {
	for {
		if err := c.readPacket(); err != nil {
			select {
			case <-c.done:
				c.fail(nil)
			default:
				if errors.Is(err, io.EOF) {
					err = errors.New("connection closed by the broker")
				}
				c.fail(err)
			}
			return
		}
		if c.ack.Len() > 0 && c.r.Buffered() == 0 {
			c.flushAcks()
		}
	}
}

// flushAcks sends the queued acknowledgements: written here when nothing else is being
// written (saving the writer goroutine a wake-up per message), else handed to the writer.
func (c *Client) flushAcks() {
	c.wmu.Lock()
	if c.writing || len(c.pending) > 0 {
		c.pending = append(c.pending, c.ack.Bytes()...)
		c.wmu.Unlock()
		c.ack.Reset()
		c.wakeWriter()
		return
	}
	c.writing = true
	c.lastSend = time.Now()
	c.wmu.Unlock()
	_, err := c.conn.Write(c.ack.Bytes())
	c.ack.Reset()
	c.wmu.Lock()
	c.writing = false
	more := len(c.pending) > 0
	c.wmu.Unlock()
	if err != nil {
		c.fail(fmt.Errorf("write: %w", err))
		return
	}
	if more {
		c.wakeWriter()
	}
}

// readPacket reads and handles one packet on the started client.
func (c *Client) readPacket() error {
	pk, err := c.next()
	if err != nil {
		return err
	}
	switch pk.FixedHeader.Type {
	case packets.Publish:
		return c.readPublish(pk)
	case packets.Puback:
		if c.releaseID(pk.PacketID) && c.opts.OnPuback != nil {
			c.opts.OnPuback(pk.PacketID, pk.ReasonCode)
		}
	case packets.Disconnect:
		return fmt.Errorf("broker sent DISCONNECT (reason %#x)", pk.ReasonCode)
	case packets.Pingresp, packets.Suback, packets.Unsuback:
	default:
		return fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return nil
}

// readPublish hands a PUBLISH to OnMessage and queues its PUBACK (QoS 1) on c.ack.
func (c *Client) readPublish(pk *packets.Packet) error {
	m := &c.msg
	*m = Message{Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Dup: pk.FixedHeader.Dup, PacketID: pk.PacketID}
	for _, u := range pk.Properties.User {
		if u.Key == "sb-id" {
			m.ID = u.Val
		}
	}
	if c.opts.OnMessage != nil {
		c.opts.OnMessage(m)
	}
	if m.QoS == 1 {
		ack := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Puback},
			PacketID:        m.PacketID,
			ProtocolVersion: c.opts.Version,
		}
		if err := ack.PubackEncode(&c.ack); err != nil {
			return fmt.Errorf("encode PUBACK: %w", err)
		}
	}
	return nil
}

// next reads and decodes the next packet into c.in, which is valid until the next call.
// The body is read straight from the bufio buffer when it is all there.
func (c *Client) next() (*packets.Packet, error) {
	hb, err := c.r.ReadByte()
	if err != nil {
		return nil, err
	}
	pk := &c.in
	*pk = packets.Packet{ProtocolVersion: c.opts.Version}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return nil, fmt.Errorf("fixed header: %w", err)
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return nil, fmt.Errorf("remaining length: %w", err)
	}
	if n > maxPacket {
		return nil, fmt.Errorf("packet of %d bytes is over the client's limit", n)
	}
	pk.FixedHeader.Remaining = n
	var body []byte
	if n <= c.r.Buffered() {
		body, _ = c.r.Peek(n)
		defer c.r.Discard(n) //nolint:errcheck // Peek guaranteed n bytes
	} else {
		if cap(c.body) < n {
			c.body = make([]byte, n)
		}
		body = c.body[:n]
		if _, err := io.ReadFull(c.r, body); err != nil {
			return nil, err
		}
	}
	switch pk.FixedHeader.Type {
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	}
	if err != nil {
		return nil, fmt.Errorf("decode packet type %d: %w", pk.FixedHeader.Type, err)
	}
	return pk, nil
}

// writeSync writes one packet directly (before Start).
func (c *Client) writeSync(pk *packets.Packet) error {
	pk.ProtocolVersion = c.opts.Version
	var b bytes.Buffer
	if err := encode(pk, &b); err != nil {
		return err
	}
	_, err := c.conn.Write(b.Bytes())
	return err
}

// readSync reads packets (before Start) until one of type want; it answers nothing else.
func (c *Client) readSync(want byte) (packets.Packet, error) {
	for {
		pk, err := c.next()
		if err != nil {
			return packets.Packet{}, err
		}
		switch pk.FixedHeader.Type {
		case want:
			out := *pk
			out.ReasonCodes = append([]byte(nil), pk.ReasonCodes...)
			return out, nil
		case packets.Publish:
			// A message may come before the SUBACK (a mailbox drained at subscription).
			if err := c.readPublish(pk); err != nil {
				return packets.Packet{}, err
			}
			if c.ack.Len() > 0 {
				_, err := c.conn.Write(c.ack.Bytes())
				c.ack.Reset()
				if err != nil {
					return packets.Packet{}, err
				}
			}
		case packets.Disconnect:
			return packets.Packet{}, fmt.Errorf("broker sent DISCONNECT (reason %#x)", pk.ReasonCode)
		}
	}
}

// encode encodes the packet types the client sends. Direct method calls (not a function
// value) let the compiler keep the caller's packet on its stack: a packets.Packet is about
// 900 bytes, and a publish must not allocate one.
func encode(pk *packets.Packet, buf *bytes.Buffer) error {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		return pk.PublishEncode(buf)
	case packets.Puback:
		return pk.PubackEncode(buf)
	case packets.Connect:
		return pk.ConnectEncode(buf)
	case packets.Subscribe:
		return pk.SubscribeEncode(buf)
	case packets.Pingreq:
		return pk.PingreqEncode(buf)
	case packets.Disconnect:
		return pk.DisconnectEncode(buf)
	}
	return fmt.Errorf("the client does not send packet type %d", pk.FixedHeader.Type)
}
