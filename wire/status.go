package wire

import "strconv"

// Status is the outcome of a request, as the server reports it in a Result.
type Status uint8

const (
	// StatusDelivered means the request was carried out: for a QoS 1 Deliver the client sent
	// its PUBACK, for a QoS 0 Deliver the message was written to the client; for Kick and
	// Drain the session was found and acted on.
	StatusDelivered Status = 1
	// StatusNotHere means the client is not connected to this node under the session the
	// request names (it never was, or that session ended or was taken over), or the node
	// cannot take more messages for it right now. Nothing was sent.
	StatusNotHere Status = 2
	// StatusStaleEpoch means the node is not live under the epoch the request addresses.
	StatusStaleEpoch Status = 3
	// StatusExpired means the message expired before delivery started; it was not delivered.
	StatusExpired Status = 4
	// StatusFailed means the outcome is unknown; also reported when the handler panicked.
	StatusFailed Status = 5
	// StatusBadRequest means the request could not be decoded or was invalid; the handler
	// was not called.
	StatusBadRequest Status = 6
	// StatusQueued means the node put the message in the client's mailbox (durably, and
	// with the client's node told), for instance because the client had not acknowledged
	// it within the Deliver's MaxWait. It will be delivered from there.
	StatusQueued Status = 7
	// StatusRejected means the client cannot take the message (it is larger than the
	// client's maximum packet size); it was not delivered and never will be.
	StatusRejected Status = 8
)

var statusNames = [...]string{
	StatusDelivered:  "delivered",
	StatusNotHere:    "not-here",
	StatusStaleEpoch: "stale-epoch",
	StatusExpired:    "expired",
	StatusFailed:     "failed",
	StatusBadRequest: "bad-request",
	StatusQueued:     "queued",
	StatusRejected:   "rejected",
}

// String returns the status's name ("delivered", "not-here", ...), or "status(N)" for a
// value this version does not know.
func (s Status) String() string {
	if s.valid() {
		return statusNames[s]
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

func (s Status) valid() bool { return s >= StatusDelivered && s <= StatusRejected }
