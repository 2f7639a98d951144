package monitor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mqttResult is what one MQTT probe measured.
type mqttResult struct {
	Ping time.Duration // CONNECT to PINGRESP: the seed's "MQTT PING"
	E2E  time.Duration // PUBLISH to the probe's own subscription and back through the node
}

// probeMQTT connects to addr as an MQTT 3.1.1 client, pings, publishes a QoS 1 message to a
// topic only it subscribes to and waits for it to come back: the node accepted, parsed,
// routed and delivered. It uses mochi's packet codec, so it speaks exactly what nodes parse.
func probeMQTT(ctx context.Context, addr, clientID, topic, username, password string) (mqttResult, error) {
	var res mqttResult
	var d net.Dialer
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return res, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c := &probeConn{conn: conn, r: bufio.NewReader(conn)}

	connect := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: clientID,
		},
	}
	if username != "" {
		connect.Connect.UsernameFlag, connect.Connect.Username = true, []byte(username)
	}
	if password != "" {
		connect.Connect.PasswordFlag, connect.Connect.Password = true, []byte(password)
	}
	if err := c.write(connect, (*packets.Packet).ConnectEncode); err != nil {
		return res, fmt.Errorf("send CONNECT: %w", err)
	}
	ack, err := c.read(packets.Connack)
	if err != nil {
		return res, fmt.Errorf("CONNACK: %w", err)
	}
	if ack.ReasonCode != 0 {
		return res, fmt.Errorf("CONNACK refused with code %#x", ack.ReasonCode)
	}
	if err := c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}, (*packets.Packet).PingreqEncode); err != nil {
		return res, fmt.Errorf("send PINGREQ: %w", err)
	}
	if _, err := c.read(packets.Pingresp); err != nil {
		return res, fmt.Errorf("PINGRESP: %w", err)
	}
	res.Ping = time.Since(start)

	sub := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    1,
		Filters:     packets.Subscriptions{{Filter: topic, Qos: 1}},
	}
	if err := c.write(sub, (*packets.Packet).SubscribeEncode); err != nil {
		return res, fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	if sa, err := c.read(packets.Suback); err != nil {
		return res, fmt.Errorf("SUBACK: %w", err)
	} else if len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] > 2 {
		return res, fmt.Errorf("SUBACK refused: %v", sa.ReasonCodes)
	}
	e2eStart := time.Now()
	payload := []byte(e2eStart.Format(time.RFC3339Nano))
	pub := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   topic,
		PacketID:    2,
		Payload:     payload,
	}
	if err := c.write(pub, (*packets.Packet).PublishEncode); err != nil {
		return res, fmt.Errorf("send PUBLISH: %w", err)
	}
	gotAck, gotMsg := false, false
	for !gotAck || !gotMsg {
		pk, err := c.read(0)
		if err != nil {
			return res, fmt.Errorf("waiting for the probe message: %w", err)
		}
		switch pk.FixedHeader.Type {
		case packets.Puback:
			gotAck = true
		case packets.Publish:
			if pk.TopicName == topic && bytes.Equal(pk.Payload, payload) {
				gotMsg = true
			}
			if pk.FixedHeader.Qos == 1 {
				ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}
				if err := c.write(ack, (*packets.Packet).PubackEncode); err != nil {
					return res, fmt.Errorf("send PUBACK: %w", err)
				}
			}
		}
	}
	res.E2E = time.Since(e2eStart)
	_ = c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}, (*packets.Packet).DisconnectEncode)
	return res, nil
}

type probeConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func (c *probeConn) write(pk packets.Packet, encode func(*packets.Packet, *bytes.Buffer) error) error {
	pk.ProtocolVersion = 4
	var buf bytes.Buffer
	if err := encode(&pk, &buf); err != nil {
		return err
	}
	_, err := c.conn.Write(buf.Bytes())
	return err
}

// maxProbePacket bounds what the probe reads from a node.
const maxProbePacket = 1 << 20

// read reads the next packet; with want != 0 it must be of that type.
func (c *probeConn) read(want byte) (packets.Packet, error) {
	var pk packets.Packet
	b, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	if n > maxProbePacket {
		return pk, fmt.Errorf("packet of %d bytes is over the probe's limit", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = 4
	pk.FixedHeader.Remaining = n
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Disconnect:
		return pk, errors.New("node sent DISCONNECT")
	}
	if err != nil {
		return pk, err
	}
	if want != 0 && pk.FixedHeader.Type != want {
		return pk, fmt.Errorf("got packet type %d, want %d", pk.FixedHeader.Type, want)
	}
	return pk, nil
}
