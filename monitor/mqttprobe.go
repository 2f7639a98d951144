package monitor

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/mqttclient"
)

// mqttResult is what one MQTT probe measured.
type mqttResult struct {
	Ping time.Duration // CONNECT to PINGRESP: the node's MQTT listener accepts and answers
	E2E  time.Duration // PUBLISH to the probe's own subscription and back through the node
}

// probeMQTT connects to member's MQTT address (with a PROXY header if it requires one) as
// an MQTT 3.1.1 client, pings, publishes a QoS 1 message to a topic only it subscribes to
// and waits for both its PUBACK and the message itself: the node accepted, parsed, routed
// and delivered. The client uses mochi's packet codec, so it speaks exactly what nodes
// parse.
func probeMQTT(ctx context.Context, member coord.Member, clientID, topic, username, password string) (mqttResult, error) {
	var res mqttResult
	start := time.Now()
	// payload is written before Start and read only by the client's reader goroutine after
	// it; the channels carry the two halves of the answer.
	var payload []byte
	acked, echoed := make(chan struct{}, 1), make(chan struct{}, 1)
	c, err := mqttclient.Dial(ctx, member.MQTTAddr, mqttclient.Options{
		ID: clientID, Version: 4, KeepAlive: 30, MaxInflight: 1,
		Username: username, Password: password, ProxyLocal: member.MQTTProxy,
		OnMessage: func(m *mqttclient.Message) {
			if payload != nil && m.Topic == topic && bytes.Equal(m.Payload, payload) {
				signal(echoed)
			}
		},
		OnPuback: func(uint16, byte) { signal(acked) },
	})
	if err != nil {
		return res, err
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		return res, err
	}
	res.Ping = time.Since(start)

	if err := c.Subscribe(ctx, topic, 1); err != nil {
		return res, err
	}
	e2eStart := time.Now()
	payload = []byte(e2eStart.Format(time.RFC3339Nano))
	c.Start()
	if _, err := c.Publish(ctx, topic, payload, 1); err != nil {
		return res, fmt.Errorf("send PUBLISH: %w", err)
	}
	// The callbacks keep their channels; the loop stops waiting on each once it fired.
	waitAck, waitEcho := acked, echoed
	for waitAck != nil || waitEcho != nil {
		select {
		case <-waitAck:
			waitAck = nil
		case <-waitEcho:
			waitEcho = nil
		case <-c.Done():
			return res, fmt.Errorf("waiting for the probe message: %w", c.Err())
		case <-ctx.Done():
			return res, fmt.Errorf("waiting for the probe message: %w", ctx.Err())
		}
	}
	res.E2E = time.Since(e2eStart)
	return res, nil
}

// signal makes a non-blocking send on a channel of capacity one: the reader goroutine
// must never wait on the probe.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
