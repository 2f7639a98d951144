package wire

import (
	"errors"
	"fmt"
)

// Deliver asks a node to deliver one message to a client connected there.
type Deliver struct {
	Seq     uint64 // set by the Conn; callers leave it zero
	Epoch   int64  // the node registration epoch the sender addresses
	Client  string // MQTT client id
	Session string // presence session token the sender saw ("" = any)
	ID      string // message id
	Topic   string
	Payload []byte
	QoS     byte
	Expires int64 // unix milliseconds
}

// Kick asks a node to disconnect a session of a client because the client has taken over
// elsewhere.
type Kick struct {
	Seq     uint64 // set by the Conn; callers leave it zero
	Epoch   int64  // the node registration epoch the sender addresses
	Client  string // MQTT client id
	Session string // the session to disconnect
}

// Drain tells a node that a client's mailbox has messages: drain it if the client is
// connected there.
type Drain struct {
	Seq    uint64 // set by the Conn; callers leave it zero
	Epoch  int64  // the node registration epoch the sender addresses
	Client string // MQTT client id
}

// Result answers one request. Seq is the request's; the server sets it whatever the
// Handler returned.
type Result struct {
	Seq    uint64
	Status Status
	Detail string // human-readable explanation, may be empty
}

var errNoClient = errors.New("empty client id")

// validate reports requests a handler must never see.
func (d Deliver) validate() error {
	switch {
	case d.Client == "":
		return errNoClient
	case d.Topic == "":
		return errors.New("empty topic")
	case d.QoS > 2:
		return fmt.Errorf("qos %d: must be 0, 1 or 2", d.QoS)
	}
	return nil
}

func (k Kick) validate() error {
	if k.Client == "" {
		return errNoClient
	}
	return nil
}

func (d Drain) validate() error {
	if d.Client == "" {
		return errNoClient
	}
	return nil
}
