package node

import (
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The server keep-alive [MQTT-3.1.2-21, MQTT-3.1.2-22]. mochi (v2.7.9) has no setting for
// it: it holds every client to the keep-alive its CONNECT asked for, 0 (never cut off)
// included. What it does have is a client's State.Keepalive, from which it sets the
// connection's deadline (1.5 times it) after OnConnect and before every packet it reads,
// and State.ServerKeepalive, which makes its CONNACK carry State.Keepalive as Server Keep
// Alive. OnConnect sets both, so the value the client is told is the one enforced.

// applyKeepAlive decides the keep-alive a connecting client is held to, from the one its
// CONNECT asked for and Limits.MaxKeepAlive (see there), and reports false for a client
// that must be refused: MQTT 3.1.1 has no way to tell a client to use another keep-alive,
// and holding one to a shorter deadline than it pings at would cut it off again at every
// reconnect, so it is refused instead, as mosquitto's max_keepalive does.
func (n *Node) applyKeepAlive(cl *mqtt.Client, pk packets.Packet) bool {
	asked := pk.Connect.Keepalive
	held := asked
	if limit := n.cfg.Limits.MaxKeepAlive; limit > 0 && (asked == 0 || asked > limit) {
		held = limit
	} else if asked > MaxServerKeepAlive {
		// Beyond what mochi's deadline arithmetic can hold (see MaxServerKeepAlive): it
		// would cut the client off after less than its keep-alive. An MQTT 5 client can be
		// told the longest that works; a 3.1.1 one keeps its own (see docs/OPERATIONS.md).
		if cl.Properties.ProtocolVersion < 5 {
			return true
		}
		held = MaxServerKeepAlive
	}
	if held == asked {
		return true
	}
	if cl.Properties.ProtocolVersion < 5 {
		return false
	}
	cl.State.Keepalive = held
	cl.State.ServerKeepalive = true
	return true
}

// refuseKeepAlive answers a 3.1.1 client whose keep-alive the server does not allow with
// CONNACK 0x02 (identifier rejected, the code mosquitto answers it with; 3.1.1 has none
// closer), and logs why, throttled: a fleet configured so would otherwise log at its
// reconnect rate.
func (n *Node) refuseKeepAlive(cl *mqtt.Client, pk packets.Packet) error {
	n.metrics.connections.WithLabelValues("refused_keepalive").Inc()
	n.throttled.log(n.log, slog.LevelWarn, "refusing connection: keep-alive above the server's maximum (MQTT 3.1.1 cannot be told to use another)",
		"client", cl.ID, "remote", cl.Net.Remote, "keepalive", pk.Connect.Keepalive, "max", n.cfg.Limits.MaxKeepAlive)
	_ = n.mqtt.SendConnack(cl, packets.Err3ClientIdentifierNotValid, false, nil)
	return errRefused
}
