package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// Msg is a message an MQTT test client received.
type Msg struct {
	Topic   string
	Payload []byte
	QoS     byte
	ID      string // the sb-id user property: the router's message id
	Dup     bool
	Retain  bool              // the RETAIN flag as received
	User    map[string]string // every user property, by key
	// UserList is every user property in the order received, repeated keys included.
	UserList [][2]string
	// Expiry is the message expiry interval received (seconds), if one came.
	Expiry *uint32
	// Props are the PUBLISH's properties as received (nil if it had none).
	Props *paho.PublishProperties
	// Ack acknowledges the message, for a client with ManualAck (paho sends acks in the
	// order messages arrived: an unacknowledged one holds back the acks after it).
	Ack func() error
}

// MQTTClient is an MQTT 5 client for tests (paho.golang), acknowledging QoS 1 messages as
// they arrive.
type MQTTClient struct {
	ID      string
	Connack *paho.Connack
	c       *paho.Client
	conn    net.Conn
	msgs    chan Msg

	mu         sync.Mutex
	disconnect *paho.Disconnect
	discCh     chan struct{}
}

// MQTTOptions tune a test client.
type MQTTOptions struct {
	CleanStart     bool
	SessionExpiry  uint32
	KeepAlive      uint16
	ConnectTimeout time.Duration
	Username       string
	Password       []byte
	TLS            *tls.Config // connect over TLS when set
	// ManualAck: QoS 1 messages are acknowledged only when the test calls Msg.Ack (or
	// never), as a slow or broken device does.
	ManualAck bool
	// Will, if set, is the client's Will message (with WillUser as its user properties).
	Will     *paho.WillMessage
	WillUser map[string]string
	// WillDelay, if set, is the Will's Will Delay Interval (seconds).
	WillDelay uint32
	// WillProps, if set, are the Will's other properties (WillUser and WillDelay are added).
	WillProps *paho.WillProperties
	// MaximumPacketSize, if set, is the largest packet the client says it accepts (its
	// CONNECT's Maximum Packet Size).
	MaximumPacketSize uint32
	// ReceiveMaximum, if set, is the most unacknowledged QoS 1/2 messages the client takes.
	ReceiveMaximum uint16
}

// DialMQTT connects a client; err is the connection or CONNACK failure (the Connack, if
// one came, is in the returned client even on error).
func DialMQTT(addr, id string, o MQTTOptions) (*MQTTClient, error) {
	if o.KeepAlive == 0 {
		o.KeepAlive = 30
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	var conn net.Conn
	var err error
	if o.TLS != nil {
		var tc *tls.Conn
		if tc, err = tls.DialWithDialer(&net.Dialer{Timeout: o.ConnectTimeout}, "tcp", addr, o.TLS); err == nil {
			conn = packets.NewThreadSafeConn(tc) // paho writes from several goroutines
		}
	} else {
		conn, err = net.DialTimeout("tcp", addr, o.ConnectTimeout)
	}
	if err != nil {
		return nil, err
	}
	m := &MQTTClient{ID: id, conn: conn, msgs: make(chan Msg, 1<<16), discCh: make(chan struct{})}
	m.c = paho.NewClient(paho.ClientConfig{
		Conn:                       conn,
		EnableManualAcknowledgment: o.ManualAck,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			msg := Msg{Topic: pr.Packet.Topic, Payload: pr.Packet.Payload, QoS: pr.Packet.QoS, Dup: pr.Packet.Duplicate(), Retain: pr.Packet.Retain}
			if pr.Packet.Properties != nil {
				msg.ID = pr.Packet.Properties.User.Get("sb-id")
				for _, u := range pr.Packet.Properties.User {
					if msg.User == nil {
						msg.User = map[string]string{}
					}
					msg.User[u.Key] = u.Value
					msg.UserList = append(msg.UserList, [2]string{u.Key, u.Value})
				}
				msg.Expiry = pr.Packet.Properties.MessageExpiry
				msg.Props = pr.Packet.Properties
			}
			pk := pr.Packet
			msg.Ack = func() error { return pr.Client.Ack(pk) }
			m.msgs <- msg
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.disconnect == nil {
				m.disconnect = d
				close(m.discCh)
			}
		},
		OnClientError: func(error) {},
	})
	cp := &paho.Connect{ClientID: id, KeepAlive: o.KeepAlive, CleanStart: o.CleanStart}
	if o.Username != "" {
		cp.Username, cp.UsernameFlag = o.Username, true
	}
	if o.Password != nil {
		cp.Password, cp.PasswordFlag = o.Password, true
	}
	if o.SessionExpiry > 0 || o.MaximumPacketSize > 0 || o.ReceiveMaximum > 0 {
		cp.Properties = &paho.ConnectProperties{}
	}
	if o.ReceiveMaximum > 0 {
		cp.Properties.ReceiveMaximum = &o.ReceiveMaximum
	}
	if o.SessionExpiry > 0 {
		cp.Properties.SessionExpiryInterval = &o.SessionExpiry
	}
	if o.MaximumPacketSize > 0 {
		cp.Properties.MaximumPacketSize = &o.MaximumPacketSize
	}
	if o.Will != nil {
		cp.WillMessage = o.Will
		cp.WillProperties = &paho.WillProperties{}
		if o.WillProps != nil {
			wp := *o.WillProps
			cp.WillProperties = &wp
		}
		for k, v := range o.WillUser {
			cp.WillProperties.User = append(cp.WillProperties.User, paho.UserProperty{Key: k, Value: v})
		}
		if o.WillDelay > 0 {
			cp.WillProperties.WillDelayInterval = &o.WillDelay
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.ConnectTimeout)
	defer cancel()
	ca, err := m.c.Connect(ctx, cp)
	m.Connack = ca
	if err != nil {
		conn.Close()
		return m, err
	}
	return m, nil
}

// ConnectMQTT is DialMQTT that fails the test on error and disconnects at cleanup.
func ConnectMQTT(t testing.TB, addr, id string, o MQTTOptions) *MQTTClient {
	t.Helper()
	m, err := DialMQTT(addr, id, o)
	if err != nil {
		t.Fatalf("MQTT connect %s to %s: %v", id, addr, err)
	}
	t.Cleanup(m.Close)
	return m
}

// Subscribe subscribes to filter at qos and waits for the SUBACK.
func (m *MQTTClient) Subscribe(filter string, qos byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, err := m.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	if len(sa.Reasons) != 1 || sa.Reasons[0] > 2 {
		return fmt.Errorf("subscribe %s refused: %v", filter, sa.Reasons)
	}
	return nil
}

// SubscribeCodes subscribes to filters at QoS 1 in one SUBSCRIBE and returns the SUBACK's
// reason codes, refusals included.
func (m *MQTTClient) SubscribeCodes(filters ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	subs := make([]paho.SubscribeOptions, len(filters))
	for i, f := range filters {
		subs[i] = paho.SubscribeOptions{Topic: f, QoS: 1}
	}
	sa, err := m.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
	if sa == nil {
		return nil, fmt.Errorf("subscribe %v: %w", filters, err)
	}
	return sa.Reasons, nil // err only says that a code is a refusal
}

// SubscribeWith subscribes with MQTT 5 subscription options (retain handling, retain as
// published, no local).
func (m *MQTTClient) SubscribeWith(o paho.SubscribeOptions) error { return m.SubscribeID(o, 0) }

// SubscribeID is SubscribeWith with a Subscription Identifier (none if id is 0).
func (m *MQTTClient) SubscribeID(o paho.SubscribeOptions, id int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub := &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{o}}
	if id > 0 {
		sub.Properties = &paho.SubscribeProperties{SubscriptionIdentifier: &id}
	}
	sa, err := m.c.Subscribe(ctx, sub)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", o.Topic, err)
	}
	if len(sa.Reasons) != 1 || sa.Reasons[0] > 2 {
		return fmt.Errorf("subscribe %s refused: %v", o.Topic, sa.Reasons)
	}
	return nil
}

// Publish publishes at qos and waits for the acknowledgement (QoS 1).
func (m *MQTTClient) Publish(topic string, payload []byte, qos byte) error {
	return m.PublishWith(topic, payload, qos, nil)
}

// PublishRetained publishes a retained message (an empty payload clears the topic's) and
// waits for the acknowledgement.
func (m *MQTTClient) PublishRetained(topic string, payload []byte, qos byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := m.c.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos, Retain: true})
	return err
}

// PublishPacket publishes p as it is and returns the acknowledgement's reason code (QoS 1).
func (m *MQTTClient) PublishPacket(p *paho.Publish) (byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := m.c.Publish(ctx, p)
	if r != nil {
		return r.ReasonCode, err
	}
	return 0, err
}

// PublishWith publishes with user properties; an error includes a refusal in the PUBACK.
func (m *MQTTClient) PublishWith(topic string, payload []byte, qos byte, user map[string]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := &paho.Publish{Topic: topic, Payload: payload, QoS: qos}
	if len(user) > 0 {
		p.Properties = &paho.PublishProperties{}
		for k, v := range user {
			p.Properties.User = append(p.Properties.User, paho.UserProperty{Key: k, Value: v})
		}
	}
	_, err := m.c.Publish(ctx, p)
	return err
}

// PublishProps publishes with user properties in the given order (repeated keys kept) and,
// when expiry > 0, a message expiry interval (seconds); it waits for the acknowledgement
// (QoS 1) and returns its reason code.
func (m *MQTTClient) PublishProps(topic string, payload []byte, qos byte, user [][2]string, expiry uint32) (byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := &paho.Publish{Topic: topic, Payload: payload, QoS: qos, Properties: &paho.PublishProperties{}}
	for _, u := range user {
		p.Properties.User = append(p.Properties.User, paho.UserProperty{Key: u[0], Value: u[1]})
	}
	if expiry > 0 {
		p.Properties.MessageExpiry = &expiry
	}
	r, err := m.c.Publish(ctx, p)
	if r != nil {
		return r.ReasonCode, err
	}
	return 0, err
}

// Messages is the channel of received messages.
func (m *MQTTClient) Messages() <-chan Msg { return m.msgs }

// Next waits up to d for the next message.
func (m *MQTTClient) Next(d time.Duration) (Msg, error) {
	select {
	case msg := <-m.msgs:
		return msg, nil
	case <-time.After(d):
		return Msg{}, fmt.Errorf("%s: no message within %v", m.ID, d)
	}
}

// Disconnected returns a channel closed when the server sends DISCONNECT.
func (m *MQTTClient) Disconnected() <-chan struct{} { return m.discCh }

// Done is closed when the connection has ended, for any reason.
func (m *MQTTClient) Done() <-chan struct{} { return m.c.Done() }

// DisconnectReason is the reason code of the server's DISCONNECT (0 if none came).
func (m *MQTTClient) DisconnectReason() byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.disconnect == nil {
		return 0
	}
	return m.disconnect.ReasonCode
}

// Drop closes the TCP connection without DISCONNECT, as a device that loses its network
// does.
func (m *MQTTClient) Drop() { _ = m.conn.Close() }

// Close disconnects politely (idempotent).
func (m *MQTTClient) Close() {
	_ = m.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
}
