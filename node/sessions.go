package node

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/auth"
)

// mochi asks OnACLCheck, for every subscriber a publish matches, whether that subscriber
// may read the topic — for a session whose client is offline too, before it keeps the QoS
// 1/2 message for it. The node's client table forgets a client when its connection ends,
// so such a check used to find no identity and refuse: a 3.1.1 clean-session-0 or MQTT 5
// session-expiry client got nothing published while it was offline [MQTT-3.1.2-4/5],
// and the message expiry interval was never tested either. sessionIdents keeps the
// identity a session was authenticated with for as long as mochi keeps the session.

// sessionIdents maps a client id to the mochi client whose session it is and the identity
// that client authenticated with. Safe for concurrent use.
type sessionIdents struct {
	mu sync.Mutex
	m  map[string]sessionIdent
}

type sessionIdent struct {
	cl    *mqtt.Client
	ident *auth.Identity
}

func newSessionIdents() *sessionIdents { return &sessionIdents{m: map[string]sessionIdent{}} }

// set records cl's identity when its CONNECT is accepted (a later connection of the same
// id replaces it: mochi moves the session to the new client).
func (s *sessionIdents) set(cl *mqtt.Client, ident *auth.Identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[cl.ID] = sessionIdent{cl: cl, ident: ident}
}

// get returns the identity of cl's session, nil if cl is not the client that holds it.
func (s *sessionIdents) get(cl *mqtt.Client) *auth.Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[cl.ID]; ok && e.cl == cl {
		return e.ident
	}
	return nil
}

// drop forgets cl's session (it ended or expired); a newer client's entry stays.
func (s *sessionIdents) drop(cl *mqtt.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[cl.ID]; ok && e.cl == cl {
		delete(s.m, cl.ID)
	}
}

// clampSessionExpiry caps the session expiry a DISCONNECT asks for at the node's maximum.
// mochi caps the CONNECT's but takes the DISCONNECT's as it comes, so without this a
// client could connect with a minute and leave with 0xFFFFFFFF (never expire), and its
// session — and the messages kept for it — would stay until the node restarts.
func (n *Node) clampSessionExpiry(pk packets.Packet) packets.Packet {
	if max := n.cfg.Limits.MaxSessionExpiry; pk.Properties.SessionExpiryIntervalFlag && pk.Properties.SessionExpiryInterval > max {
		pk.Properties.SessionExpiryInterval = max
	}
	return pk
}
