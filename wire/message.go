package wire

import (
	"errors"
	"fmt"
)

// MaxMsgs is the most messages one Deliver may carry.
const MaxMsgs = 10_000

// Msg is one message of a Deliver.
type Msg struct {
	ID      string // message id
	Topic   string
	Payload []byte
	QoS     byte  // 0 or 1; on the wire it shares its byte with Receipt, so at most 0x7f
	TTL     int64 // milliseconds the message has left to live when the request was sent
	// Receipt asks for a terminal receipt (store.Receipts): the node records one in the
	// store before it answers the message delivered or expired.
	Receipt bool
}

// Deliver asks a node to deliver messages, in order, to one session of one client
// connected there. The node takes all of them or none (every one is answered with the same
// refusal), so messages sent in one Deliver keep their order whatever happens.
//
// Message i is answered by a Result whose Seq is Seq+i, once it is settled: delivered
// (the client acknowledged it, or it was written for QoS 0), queued (the node put it in
// the client's mailbox, for instance because the client did not acknowledge it within
// MaxWait), expired, or refused.
type Deliver struct {
	Seq     uint64 // set by the Conn (the first of len(Msgs) numbers); callers leave it zero
	Epoch   int64  // the node registration epoch the sender addresses
	Client  string // MQTT client id
	Session string // presence session token the sender saw; required
	MaxWait uint32 // milliseconds the node may hold a message unsettled before it queues it; 0: the node's default
	Msgs    []Msg  // 1 to MaxMsgs messages
}

// Kick asks a node to disconnect a session of a client because the client has taken over
// elsewhere. Once the node has answered, it sends that session nothing more.
type Kick struct {
	Seq     uint64 // set by the Conn; callers leave it zero
	Epoch   int64  // the node registration epoch the sender addresses
	Client  string // MQTT client id
	Session string // the session to disconnect
}

// Drain tells a node that the mailboxes of some clients hold messages it may not know of.
// Once the node has answered, it sends each of those clients (if connected there) nothing
// that arrives later before it has read its mailbox.
type Drain struct {
	Seq     uint64   // set by the Conn; callers leave it zero
	Epoch   int64    // the node registration epoch the sender addresses
	Clients []string // MQTT client ids, at least one
}

// Result answers one request (or one message of a Deliver). Seq is the request's (for a
// Deliver, its Seq plus the message's index); the server sets it whatever the Handler
// returned.
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
	case d.Session == "":
		return errors.New("empty session: a delivery must name the session it is for")
	case len(d.Msgs) == 0:
		return errors.New("no messages")
	case len(d.Msgs) > MaxMsgs:
		return fmt.Errorf("%d messages: at most %d", len(d.Msgs), MaxMsgs)
	}
	for i, m := range d.Msgs {
		switch {
		case m.ID == "":
			return fmt.Errorf("message %d: empty id", i)
		case m.Topic == "":
			return fmt.Errorf("message %d: empty topic", i)
		case m.QoS > 1:
			return fmt.Errorf("message %d: qos %d: must be 0 or 1", i, m.QoS)
		}
	}
	return nil
}

func (k Kick) validate() error {
	switch {
	case k.Client == "":
		return errNoClient
	case k.Session == "":
		return errors.New("empty session")
	}
	return nil
}

func (d Drain) validate() error {
	if len(d.Clients) == 0 {
		return errors.New("no clients")
	}
	for _, c := range d.Clients {
		if c == "" {
			return errNoClient
		}
	}
	return nil
}
