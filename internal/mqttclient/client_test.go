package mqttclient

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

func dialT(t *testing.T, addr string, o Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, o)
	if err != nil {
		t.Fatalf("dial %s: %v", o.ID, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// received collects messages from OnMessage (copying what it must).
type received struct {
	mu   sync.Mutex
	msgs []Message
	got  chan struct{}
}

func newReceived() *received { return &received{got: make(chan struct{}, 1)} }

func (r *received) on(m *Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, Message{Topic: strings.Clone(m.Topic), Payload: bytes.Clone(m.Payload), QoS: m.QoS, ID: strings.Clone(m.ID)})
	r.mu.Unlock()
	select {
	case r.got <- struct{}{}:
	default:
	}
}

func (r *received) waitFor(t *testing.T, n int, d time.Duration) []Message {
	t.Helper()
	deadline := time.After(d)
	for {
		r.mu.Lock()
		if len(r.msgs) >= n {
			out := append([]Message(nil), r.msgs...)
			r.mu.Unlock()
			return out
		}
		have := len(r.msgs)
		r.mu.Unlock()
		select {
		case <-r.got:
		case <-deadline:
			t.Fatalf("got %d messages within %v, want %d", have, d, n)
		}
	}
}

func TestClientPublishSubscribe(t *testing.T) {
	srv, addr := testenv.StartMochi(t)
	for _, version := range []byte{4, 5} {
		for _, qos := range []byte{0, 1} {
			t.Run(fmt.Sprintf("v%d-qos%d", version, qos), func(t *testing.T) {
				topic := fmt.Sprintf("t/%d/%d", version, qos)
				rec := newReceived()
				sub := dialT(t, addr, Options{ID: "sub" + topic, Version: version, OnMessage: rec.on})
				if err := sub.Subscribe(context.Background(), topic, qos); err != nil {
					t.Fatal(err)
				}
				sub.Start()
				var acks atomic.Int64
				pub := dialT(t, addr, Options{ID: "pub" + topic, Version: version, MaxInflight: 8,
					OnPuback: func(uint16, byte) { acks.Add(1) }})
				pub.Start()
				const n = 2000
				dropped0 := atomic.LoadInt64(&srv.Info.MessagesDropped)
				for i := range n {
					if _, err := pub.Publish(context.Background(), topic, []byte(fmt.Sprintf("m%05d", i)), qos); err != nil {
						t.Fatal(err)
					}
				}
				if qos == 0 {
					// mochi may drop QoS 0 messages for a subscriber it cannot write to fast
					// enough; what arrives must still be in order. Every message either
					// arrives or is counted dropped: wait for that.
					var msgs []Message
					deadline := time.Now().Add(10 * time.Second)
					for {
						rec.mu.Lock()
						msgs = append(msgs[:0], rec.msgs...)
						rec.mu.Unlock()
						if int64(len(msgs))+atomic.LoadInt64(&srv.Info.MessagesDropped)-dropped0 >= n || time.Now().After(deadline) {
							break
						}
						select {
						case <-rec.got:
						case <-time.After(50 * time.Millisecond): // a drop signals nothing: look again
						}
					}
					last := -1
					for _, m := range msgs {
						var k int
						if _, err := fmt.Sscanf(string(m.Payload), "m%05d", &k); err != nil || k <= last {
							t.Fatalf("QoS 0 message %q after m%05d", m.Payload, last)
						}
						last = k
					}
					if len(msgs) < n {
						t.Logf("%d of %d QoS 0 messages arrived; the broker dropped %d", len(msgs), n, atomic.LoadInt64(&srv.Info.MessagesDropped)-dropped0)
					}
					if len(msgs) < n/2 {
						t.Fatalf("only %d of %d QoS 0 messages arrived", len(msgs), n)
					}
					return
				}
				msgs := rec.waitFor(t, n, 10*time.Second)
				for i, m := range msgs[:n] {
					if want := fmt.Sprintf("m%05d", i); string(m.Payload) != want || m.Topic != topic || m.QoS != qos {
						t.Fatalf("message %d: %q on %q qos %d, want %q", i, m.Payload, m.Topic, m.QoS, want)
					}
				}
				if qos == 1 {
					deadline := time.Now().Add(5 * time.Second)
					for acks.Load() < n && time.Now().Before(deadline) {
						time.Sleep(5 * time.Millisecond)
					}
					if acks.Load() != n {
						t.Fatalf("%d PUBACKs, want %d", acks.Load(), n)
					}
				}
			})
		}
	}
}

func TestClientLargePayloadSmallBuffer(t *testing.T) {
	_, addr := testenv.StartMochi(t)
	rec := newReceived()
	sub := dialT(t, addr, Options{ID: "big-sub", ReadBufferSize: 64, OnMessage: rec.on})
	if err := sub.Subscribe(context.Background(), "big", 1); err != nil {
		t.Fatal(err)
	}
	sub.Start()
	pub := dialT(t, addr, Options{ID: "big-pub"})
	pub.Start()
	payload := bytes.Repeat([]byte("0123456789"), 30_000)
	for range 3 {
		if _, err := pub.Publish(context.Background(), "big", payload, 1); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range rec.waitFor(t, 3, 10*time.Second) {
		if !bytes.Equal(m.Payload, payload) {
			t.Fatalf("message %d: %d bytes, want %d", i, len(m.Payload), len(payload))
		}
	}
}

func TestClientRefused(t *testing.T) {
	_, addr := testenv.StartMochi(t)
	for _, v := range []byte{4, 5} {
		_, err := Dial(context.Background(), addr, Options{ID: "refused-1", Version: v})
		if err == nil || !strings.Contains(err.Error(), "refused with reason") {
			t.Fatalf("v%d: Dial of a refused client: %v", v, err)
		}
	}
	if _, err := Dial(context.Background(), addr, Options{ID: "x", Version: 3}); err == nil {
		t.Fatal("Dial accepted MQTT version 3")
	}
}

func TestClientSeesBrokerDisconnect(t *testing.T) {
	srv, addr := testenv.StartMochi(t)
	c := dialT(t, addr, Options{ID: "gone", Version: 5})
	c.Start()
	cl, ok := srv.Clients.Get("gone")
	if !ok {
		t.Fatal("broker does not know the client")
	}
	_ = srv.DisconnectClient(cl, packets.ErrAdministrativeAction)
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client did not notice the broker's DISCONNECT")
	}
	if c.Err() == nil {
		t.Fatal("Err is nil after the broker disconnected the client")
	}
	if _, err := c.Publish(context.Background(), "t", []byte("x"), 1); err == nil {
		t.Fatal("Publish on an ended client succeeded")
	}
}

func TestClientKeepAlivePings(t *testing.T) {
	_, addr := testenv.StartMochi(t)
	c := dialT(t, addr, Options{ID: "pinger", KeepAlive: 1})
	c.Start()
	// mochi drops a client silent for 1.5 keep-alive intervals.
	select {
	case <-c.Done():
		t.Fatalf("disconnected although it pings: %v", c.Err())
	case <-time.After(2500 * time.Millisecond):
	}
}

// TestClientDecodesUserProperty feeds a v5 PUBLISH carrying sb-id through the read path.
func TestClientDecodesUserProperty(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	rec := newReceived()
	c := &Client{opts: Options{Version: 5, OnMessage: rec.on}, conn: b, r: bufio.NewReader(b),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.wcond = sync.NewCond(&c.wmu)
	c.Start()
	defer c.Close()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		TopicName: "inbox/x", PacketID: 9, Payload: []byte("hello"),
		Properties: packets.Properties{User: []packets.UserProperty{{Key: "sb-id", Val: "abc123"}}},
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = a.Write(buf.Bytes()) }()
	m := rec.waitFor(t, 1, 5*time.Second)[0]
	if m.ID != "abc123" || string(m.Payload) != "hello" || m.Topic != "inbox/x" {
		t.Fatalf("%+v", m)
	}
	// The client acknowledges it.
	_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
	ack := make([]byte, 4)
	if _, err := a.Read(ack); err != nil {
		t.Fatal(err)
	}
	if ack[0] != packets.Puback<<4 || ack[3] != 9 {
		t.Fatalf("PUBACK bytes %x", ack)
	}
}

func TestClientFromSourceAddress(t *testing.T) {
	srv, addr := testenv.StartMochi(t)
	c := dialT(t, addr, Options{ID: "src", LocalAddr: "127.0.0.7"})
	c.Start()
	cl, ok := srv.Clients.Get("src")
	if !ok || !strings.HasPrefix(cl.Net.Remote, "127.0.0.7:") {
		t.Fatalf("broker sees the client from %v", cl.Net.Remote)
	}
}
