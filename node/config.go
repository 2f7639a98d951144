package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/lease"
)

// Config configures a Node. DefaultConfig shows every default.
type Config struct {
	// ID names the node in the cluster: 1-64 of [A-Za-z0-9._-]. Required.
	ID string
	// MQTTAddr is the MQTT listen address.
	MQTTAddr string
	// InternalAddr is where routers and other nodes reach this node (the wire protocol).
	InternalAddr string
	// AdminAddr serves /healthz and /metrics (and /debug/pprof with Pprof) over HTTP.
	AdminAddr string
	// Pprof serves /debug/pprof on AdminAddr. Off by default: /debug/pprof/cmdline shows
	// the command line, with any secret given as a flag, and profiles cost CPU. With it on,
	// AdminAddr must be loopback or AdminToken set.
	Pprof bool
	// AdminToken, if set, is the bearer token every /debug/pprof request must carry
	// (Authorization: Bearer <token>); /healthz and /metrics stay open for load balancers
	// and Prometheus. At least MinAdminTokenLen characters.
	AdminToken string
	// Advertise is the host written into the registration for addresses bound to all
	// interfaces (":1883", "0.0.0.0:1883"). Default: the machine's hostname.
	Advertise string
	// AdvertiseInternal, if set, is the host:port registered for InternalAddr instead of
	// the bound address: what routers and other nodes dial when they reach this node
	// through a NAT, a port mapping or a proxy.
	AdvertiseInternal string
	// DataDir is the directory whose free space the node's readiness report checks.
	DataDir string
	// InboxPrefix: client c is ready for directed messages once subscribed to
	// InboxPrefix+c; its mailbox drains then.
	InboxPrefix string
	// WireToken is the shared secret routers and nodes present on the internal channel.
	// An InternalAddr off loopback needs it or mutual TLS (InternalTLS requiring client
	// certificates): Validate refuses an unauthenticated internal channel beyond loopback.
	WireToken string
	// Auth authenticates clients and decides what each may read and write. Required:
	// anonymous access is an explicit choice made in its configuration.
	Auth *auth.Authenticator
	// MQTTTLS, if set, makes the MQTT listener TLS-only.
	MQTTTLS *tls.Config
	// WSAddr, if set, is a listen address for MQTT over WebSocket (ws://); WSSAddr, for
	// MQTT over WebSocket over TLS (wss://) with WSTLS. Both are off by default. Each takes
	// every connection through the same limits, authentication and ACLs as MQTTAddr, and
	// shares its per-address budgets.
	WSAddr, WSSAddr string
	WSTLS           *tls.Config
	// ProxyProtocol requires a PROXY protocol header (v1 or v2) on every connection to the
	// MQTT and WebSocket listeners, from a source in ProxyTrusted (required with it);
	// connections from other sources are closed at accept, and those without a valid
	// header before anything else is read. The client address in the header is the one
	// the per-address limits count and the logs name.
	ProxyProtocol bool
	ProxyTrusted  []netip.Prefix
	// InternalTLS, if set, makes the internal listener TLS (mutual, when it requires client
	// certificates); PeerTLS is the client side used to reach other nodes.
	InternalTLS, PeerTLS *tls.Config

	Limits     Limits
	Health     HealthConfig
	Quarantine QuarantineConfig

	// MaxWait is how long a directed message from a router may wait for the client's
	// PUBACK before the node puts it in the mailbox and answers `queued` (a request's
	// max_wait overrides it). The message stays in flight: its PUBACK, when it comes,
	// removes the mailbox copy, so a slow client costs the sender neither latency nor a
	// duplicate.
	MaxWait time.Duration
	// Window is the most directed QoS 1 messages in flight to one client at once (also
	// bounded by the client's receive maximum, less what mochi has in flight to it).
	Window int
	// OutboxLimit is the most directed messages from routers waiting to be written to one
	// client; beyond it the node refuses more (the router queues them in the mailbox).
	OutboxLimit int
	// MaxQueuedBytes bounds the bytes of directed messages the node holds unanswered, over
	// all clients; beyond it the node refuses more.
	MaxQueuedBytes int64
	// DrainBatch is how many mailbox messages one read takes (and the read-ahead).
	DrainBatch int
	// WriteTimeout bounds a write to a client that has no keepalive (with one, mochi's
	// keepalive deadline bounds it).
	WriteTimeout time.Duration
	// Lease is the node's delivery lease (see package lease).
	Lease LeaseConfig
	// ClockSkew shifts the node's wall clock (presence and accepted stamps), for tests
	// that show a machine with a wrong clock cannot expire an accepted message early: the
	// node times expiries on its monotonic clock from durations the store gives.
	ClockSkew time.Duration
	// MailboxLimit caps each client's mailbox (messages) for messages the node itself
	// stores (dropped by the broker for a slow subscriber).
	MailboxLimit int
	// StoreTimeout bounds each call to the presence/mailbox store made on a client's
	// goroutine (connect, disconnect): a slow store must not stall the client forever.
	StoreTimeout time.Duration
	// ShutdownTimeout bounds a clean shutdown.
	ShutdownTimeout time.Duration
	// RouteSyncTimeout bounds how long a SUBACK waits for every other live node to learn
	// the new subscription (so that a publish on any node after the SUBACK reaches it); a
	// node that does not answer in time learns it later.
	RouteSyncTimeout time.Duration
	// AuditInterval is how often the node checks every connected client's presence
	// against the store (see auditLoop): at most this long can a session the store lost
	// sight of go without its mailbox; an offline session is kept here at most two of it
	// for a client connected on another node meanwhile. Zero turns the audit off.
	AuditInterval time.Duration
}

// Limits protect a node from clients. Every one is finite by default.
type Limits struct {
	// MaxPacketSize is the largest MQTT packet accepted (bytes), enforced from the fixed
	// header before the body is allocated. mochi's default is unlimited.
	MaxPacketSize uint32
	// MaxClients is the most concurrent MQTT connections; more are refused (0x89/0x03).
	MaxClients int64
	// MaxSessionExpiry caps the session expiry interval a client may ask for (seconds).
	MaxSessionExpiry uint32
	// MaxMessageExpiry caps how long a message waits in the broker's own session state.
	MaxMessageExpiry time.Duration
	// MaxKeepAlive, if not 0, is the server keep-alive (seconds, at most
	// MaxServerKeepAlive): the longest keep-alive a client may use, as mosquitto's
	// max_keepalive. An MQTT 5 client asking for more, or for 0 (none), is told this value
	// in CONNACK's Server Keep Alive [MQTT-3.1.2-21] and held to it: silent for 1.5 times
	// it, it is disconnected. An MQTT 3.1.1 client cannot be told, so one asking for more
	// or for 0 is refused (CONNACK 0x02, as mosquitto). 0 leaves every client its own.
	MaxKeepAlive uint16
	// MaxSubscriptions is the most filters one session may hold, its own inbox (and its
	// probe topic) not counted: a subscription beyond it is refused, 0x97 Quota exceeded
	// (MQTT 3.1.1: 0x80). Every node keeps every session's filters, so without a cap one
	// client with an ordinary write rule could grow every node's memory without bound.
	MaxSubscriptions int
	// MaxFilterLength is the longest topic filter a client may subscribe to (bytes, the
	// $share/<group>/ prefix included); a longer one is refused as over the quota.
	MaxFilterLength int
	// TopicAliasMax is the topic alias maximum offered to MQTT 5 clients.
	TopicAliasMax uint16
	// ReceiveMaximum is the most unacknowledged QoS 1/2 messages a client may send.
	ReceiveMaximum uint16
	// MaxInflight is the most unacknowledged QoS>0 messages held per client (sent and not
	// yet acknowledged, or waiting for the client's receive maximum). Beyond it mochi drops
	// further pub/sub messages to that client without calling any hook (counted in
	// switchboard_node_mqtt_inflight_dropped_total); below it, a client that stops reading
	// fills its outbound queue first, and those drops go to its mailbox.
	MaxInflight uint16
	// ConnRatePerIP is how many new MQTT connections a second one source address may open
	// (a token bucket of ConnBurstPerIP); more are closed at once. 0 disables the limit
	// (behind a load balancer that hides client addresses, every client shares one).
	ConnRatePerIP  float64
	ConnBurstPerIP int
	// WritesPending is the per-client outbound queue (mochi's MaximumClientWritesPending):
	// a channel buffer of 8 bytes a slot allocated with every connection, idle or not. It
	// carries only mochi's own pub/sub and retained messages (directed messages are written
	// by the node itself); when it is full, QoS>0 messages go to the client's mailbox
	// (OnPublishDropped) and QoS 0 ones are dropped. 64 slots saved 1.5 KB a connection but
	// overflowed under an ordinary QoS 1 stream (a subscriber 256 messages behind), and a
	// pub/sub client that never subscribes to its inbox never reads its mailbox: 256.
	WritesPending int32
	// ReadBuffer is the size of each connection's read buffer (mochi's
	// ClientNetReadBufferSize), allocated with the connection, idle or not. A packet larger
	// than the buffer is read past it, straight into the packet's own memory; a small buffer
	// only means more read calls for a client that sends many small packets at once.
	ReadBuffer int

	// Before authentication (see docs/SECURITY.md): a connection is pending from accept
	// until its CONNECT is authenticated or answered.

	// ConnectTimeout bounds the pending phase's I/O: the TLS handshake and the CONNECT must
	// arrive within it of accept, or the connection is closed.
	ConnectTimeout time.Duration
	// MaxConnectSize is the largest CONNECT accepted (its remaining length, bytes: client
	// id, credentials, properties and Will, payload included), checked from the fixed
	// header as it arrives; a larger one is closed before its body is read or allocated.
	MaxConnectSize uint32
	// MaxPending is the most pending connections; more are closed at accept, before any
	// goroutine starts for them. Open connections, pending or not, are capped at
	// MaxClients+MaxPending the same way.
	MaxPending int
	// MaxPendingPerIP is the most pending connections from one source address, so one
	// address cannot take every pending slot (0: no limit; behind a proxy that hides client
	// addresses every client shares one).
	MaxPendingPerIP int
	// AuthConcurrency is how many credential checks (a bcrypt comparison for a password)
	// run at once; a CONNECT that finds none free within AuthWait is refused with 0x89
	// server busy (3.1.1: 0x03).
	AuthConcurrency int
	AuthWait        time.Duration
	// AuthFailuresPerIP is how many failed authentications one source address may cause
	// a minute; beyond it, its CONNECTs with credentials are refused (0x9F, 3.1.1: 0x03)
	// without being checked until the minute from its first failure has passed (0: no
	// limit).
	AuthFailuresPerIP int
	// PerIPExempt are source addresses the per-address limits (ConnRatePerIP,
	// MaxPendingPerIP, AuthFailuresPerIP) do not apply to: the monitors', whose probes
	// would otherwise be refused, and the node quarantined, once a client sharing their
	// address spent its share. The limits on all connections still apply to them, and
	// their credential checks wait for a slot like any other.
	PerIPExempt []netip.Prefix
}

// HealthConfig sets the node's own readiness checks (the /healthz detail).
type HealthConfig struct {
	// Interval between checks.
	Interval time.Duration
	// MinFreeDisk is the least free space on DataDir's file system (bytes).
	MinFreeDisk uint64
	// MaxMemory is the most heap the node may use (bytes); 0 disables the check.
	MaxMemory uint64
	// StoreTimeout bounds the store ping.
	StoreTimeout time.Duration
}

// LeaseConfig sets the node's delivery lease.
type LeaseConfig struct {
	// Duration: a notice stored for the node takes effect at most this long later (a lost
	// takeover kick delays the new session's CONNACK, a message queued while its router
	// cannot reach the node delays that router's answer, by up to this much). The node
	// stops sending to every client when it cannot renew for this long.
	Duration time.Duration
	// Interval is how often the node takes its notices: a message queued for a connected
	// client whose node could not be told directly arrives within about this long.
	Interval time.Duration
}

// QuarantineConfig sets how a quarantined node leaves service.
type QuarantineConfig struct {
	// Grace is how long the node stays in the live set after its mark appears, refusing
	// new connections and answering /healthz 503, so the load balancer takes it out first.
	Grace time.Duration
	// MoveRate is how many clients a second are moved off after the grace (MQTT 5
	// DISCONNECT 0x9C "use another server"; 3.1.1 connection closed), so they reconnect
	// elsewhere without a thundering herd.
	MoveRate int
}

// DefaultConfig returns the defaults: the node listens for MQTT on all interfaces, for
// routers and admin on loopback.
func DefaultConfig() Config {
	return Config{
		MQTTAddr:     ":1883",
		InternalAddr: "127.0.0.1:7883",
		AdminAddr:    "127.0.0.1:9883",
		DataDir:      ".",
		InboxPrefix:  "inbox/",
		Limits: Limits{
			MaxPacketSize:    1 << 20, // 1 MiB, as EMQX
			MaxClients:       100_000,
			MaxSessionExpiry: 2 * 60 * 60, // 2h, as EMQX
			MaxMessageExpiry: 24 * time.Hour,
			MaxKeepAlive:     0,    // off: the client's own keep-alive, as mochi and mosquitto
			MaxSubscriptions: 100,  // AWS IoT allows 50 a connection; EMQX has no cap by default
			MaxFilterLength:  1024, // AWS IoT allows 256 bytes; MQTT, 65,535
			TopicAliasMax:    16,
			ReceiveMaximum:   128,
			MaxInflight:      8192,
			WritesPending:    256, // 2 KiB a connection; mochi's default, 8192, is 64 KiB
			ReadBuffer:       512, // mochi's default is 2048
			ConnRatePerIP:    500,
			ConnBurstPerIP:   1000,

			ConnectTimeout:    10 * time.Second,
			MaxConnectSize:    64 << 10, // 64 KiB: a JWT and a modest Will fit
			MaxPending:        1000,
			MaxPendingPerIP:   100,
			AuthConcurrency:   max(1, runtime.GOMAXPROCS(0)/2), // half the cores at most on bcrypt
			AuthWait:          2 * time.Second,
			AuthFailuresPerIP: 10,
		},
		Health: HealthConfig{
			Interval:     time.Second,
			MinFreeDisk:  64 << 20, // 64 MiB
			MaxMemory:    0,
			StoreTimeout: time.Second,
		},
		Quarantine: QuarantineConfig{
			Grace:    10 * time.Second,
			MoveRate: 200,
		},
		MaxWait:          time.Second,
		Window:           128,
		OutboxLimit:      10_000,
		MaxQueuedBytes:   256 << 20,
		DrainBatch:       128,
		WriteTimeout:     10 * time.Second,
		Lease:            LeaseConfig{Duration: lease.DefaultDuration, Interval: lease.DefaultInterval},
		MailboxLimit:     10_000,
		StoreTimeout:     2 * time.Second,
		ShutdownTimeout:  10 * time.Second,
		AuditInterval:    30 * time.Second,
		RouteSyncTimeout: 2 * time.Second,
	}
}

// MaxServerKeepAlive is the largest Limits.MaxKeepAlive (seconds, about 12h08m): mochi
// (v2.7.9) computes a client's deadline, 1.5 times its keep-alive, in 16-bit seconds,
// which wraps above it (65535 would become 32766).
const MaxServerKeepAlive = 43690

// maxDrainBatch is the most messages a store Peek returns: a read that returns fewer than
// it asked for is taken to have reached the end of the mailbox, so a batch must not ask
// for more.
const maxDrainBatch = 1000

// FieldError is an error about one Config field whose name a user may need to find it by:
// Field is the field's Go name ("MQTTAddr"), which a CLI maps back to its own flag or key;
// Value is the bad value, when there is one to show.
type FieldError struct {
	Field string
	Value string
	Err   error
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("%s %q: %v", e.Field, e.Value, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks the configuration without side effects; errors name the field.
func (c Config) Validate() error {
	if c.Auth == nil {
		return fmt.Errorf("auth: no authenticator (give a credentials file, JWT keys, or allow anonymous access explicitly)")
	}
	if err := coord.ValidateID(c.ID); err != nil {
		return &FieldError{Field: "ID", Err: err}
	}
	for _, a := range []struct{ field, addr string }{
		{"MQTTAddr", c.MQTTAddr}, {"InternalAddr", c.InternalAddr}, {"AdminAddr", c.AdminAddr},
	} {
		if err := validateAddr(a.addr); err != nil {
			return &FieldError{Field: a.field, Value: a.addr, Err: err}
		}
	}
	for _, a := range []struct{ field, addr string }{{"WSAddr", c.WSAddr}, {"WSSAddr", c.WSSAddr}} {
		if a.addr == "" {
			continue
		}
		if err := validateAddr(a.addr); err != nil {
			return &FieldError{Field: a.field, Value: a.addr, Err: err}
		}
	}
	if c.WSSAddr != "" && c.WSTLS == nil {
		return &FieldError{Field: "WSSAddr", Value: c.WSSAddr, Err: errors.New("no certificate (give WSTLS)")}
	}
	if c.ProxyProtocol && len(c.ProxyTrusted) == 0 {
		return &FieldError{Field: "ProxyProtocol", Err: errors.New("no trusted sources (give ProxyTrusted, the proxies' addresses or prefixes)")}
	}
	if err := c.validateExposure(); err != nil {
		return err
	}
	if c.AdvertiseInternal != "" {
		if host, _, err := net.SplitHostPort(c.AdvertiseInternal); err != nil || host == "" {
			return &FieldError{Field: "AdvertiseInternal", Value: c.AdvertiseInternal, Err: errors.New("want host:port")}
		}
	}
	if c.InboxPrefix == "" || strings.ContainsAny(c.InboxPrefix, "+#") {
		return &FieldError{Field: "InboxPrefix", Value: c.InboxPrefix, Err: errors.New("must be non-empty and without wildcards")}
	}
	l := c.Limits
	positive := errors.New("must be positive")
	for _, f := range []struct {
		field string
		bad   bool
		value any
		err   error
	}{
		{"Limits.MaxPacketSize", l.MaxPacketSize < 128, l.MaxPacketSize, errors.New("too small (minimum 128 bytes)")},
		{"Limits.MaxClients", l.MaxClients <= 0, l.MaxClients, positive},
		{"Limits.MaxSessionExpiry", l.MaxSessionExpiry == 0, l.MaxSessionExpiry, positive},
		{"Limits.MaxSubscriptions", l.MaxSubscriptions <= 0, l.MaxSubscriptions, positive},
		{"Limits.MaxFilterLength", l.MaxFilterLength <= 0 || l.MaxFilterLength > 65535, l.MaxFilterLength, errors.New("must be 1 to 65535 bytes")},
		{"Limits.MaxKeepAlive", l.MaxKeepAlive > MaxServerKeepAlive, fmt.Sprintf("%ds", l.MaxKeepAlive),
			fmt.Errorf("at most %ds (mochi's keep-alive deadline wraps above it)", MaxServerKeepAlive)},
		{"Limits.ReceiveMaximum", l.ReceiveMaximum == 0, l.ReceiveMaximum, positive},
		{"Limits.MaxInflight", l.MaxInflight == 0, l.MaxInflight, positive},
		{"Limits.WritesPending", l.WritesPending <= 0, l.WritesPending, positive},
		{"Limits.ReadBuffer", l.ReadBuffer < 64, l.ReadBuffer, errors.New("too small (minimum 64 bytes)")},
		{"Limits.ConnRatePerIP", l.ConnRatePerIP < 0, l.ConnRatePerIP, errors.New("must not be negative")},
		{"Limits.ConnBurstPerIP", l.ConnRatePerIP > 0 && l.ConnBurstPerIP <= 0, l.ConnBurstPerIP, errors.New("must be positive with a connection rate")},
		{"Limits.ConnectTimeout", l.ConnectTimeout <= 0, l.ConnectTimeout, positive},
		{"Limits.MaxConnectSize", l.MaxConnectSize < 128, l.MaxConnectSize, errors.New("too small (minimum 128 bytes)")},
		{"Limits.MaxPending", l.MaxPending <= 0, l.MaxPending, positive},
		{"Limits.MaxPendingPerIP", l.MaxPendingPerIP < 0, l.MaxPendingPerIP, errors.New("must not be negative")},
		{"Limits.AuthConcurrency", l.AuthConcurrency <= 0, l.AuthConcurrency, positive},
		{"Limits.AuthWait", l.AuthWait <= 0, l.AuthWait, positive},
		{"Limits.AuthFailuresPerIP", l.AuthFailuresPerIP < 0, l.AuthFailuresPerIP, errors.New("must not be negative")},
		{"MaxWait", c.MaxWait <= 0, c.MaxWait, positive},
		{"StoreTimeout", c.StoreTimeout <= 0, c.StoreTimeout, positive},
		{"WriteTimeout", c.WriteTimeout <= 0, c.WriteTimeout, positive},
		{"ShutdownTimeout", c.ShutdownTimeout <= 0, c.ShutdownTimeout, positive},
		{"Health.Interval", c.Health.Interval <= 0, c.Health.Interval, positive},
		{"RouteSyncTimeout", c.RouteSyncTimeout <= 0, c.RouteSyncTimeout, positive},
		{"AuditInterval", c.AuditInterval < 0, c.AuditInterval, errors.New("must not be negative (0 turns it off)")},
		{"Quarantine.Grace", c.Quarantine.Grace < 0, c.Quarantine.Grace, errors.New("must not be negative")},
		{"Quarantine.MoveRate", c.Quarantine.MoveRate <= 0, c.Quarantine.MoveRate, positive},
		{"DrainBatch", c.DrainBatch <= 0 || c.DrainBatch > maxDrainBatch, c.DrainBatch,
			fmt.Errorf("must be 1 to %d (a store read returns at most that many)", maxDrainBatch)},
		{"MailboxLimit", c.MailboxLimit <= 0, c.MailboxLimit, positive},
		{"Window", c.Window <= 0, c.Window, positive},
		{"OutboxLimit", c.OutboxLimit <= 0, c.OutboxLimit, positive},
		{"MaxQueuedBytes", c.MaxQueuedBytes <= 0, c.MaxQueuedBytes, positive},
	} {
		if f.bad {
			return &FieldError{Field: f.field, Value: fmt.Sprint(f.value), Err: f.err}
		}
	}
	if err := (lease.Config{Node: c.ID, Duration: c.Lease.Duration, Interval: c.Lease.Interval}).Validate(); err != nil {
		return &FieldError{Field: "Lease", Err: err}
	}
	return nil
}

func validateAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, " /") {
		return fmt.Errorf("bad host %q", host)
	}
	if port == "" {
		return fmt.Errorf("missing port")
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}
