package node

import (
	"crypto/tls"
	"fmt"
	"net"
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
	// AdminAddr serves /healthz, /metrics and /debug/pprof over HTTP.
	AdminAddr string
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
	WireToken string
	// Auth authenticates clients and decides what each may read and write. Required:
	// anonymous access is an explicit choice made in its configuration.
	Auth *auth.Authenticator
	// MQTTTLS, if set, makes the MQTT listener TLS-only.
	MQTTTLS *tls.Config
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
	// its buffer is allocated per connection, so it sets most of a connection's idle memory.
	WritesPending int32
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
			TopicAliasMax:    16,
			ReceiveMaximum:   128,
			MaxInflight:      8192,
			WritesPending:    256,
			ConnRatePerIP:    500,
			ConnBurstPerIP:   1000,
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
		MaxWait:         time.Second,
		Window:          128,
		OutboxLimit:     1000,
		MaxQueuedBytes:  256 << 20,
		DrainBatch:      128,
		WriteTimeout:    10 * time.Second,
		Lease:           LeaseConfig{Duration: lease.DefaultDuration, Interval: lease.DefaultInterval},
		MailboxLimit:    10_000,
		StoreTimeout:    2 * time.Second,
		ShutdownTimeout: 10 * time.Second,
	}
}

// Validate checks the configuration without side effects; errors name the field.
func (c Config) Validate() error {
	if c.Auth == nil {
		return fmt.Errorf("auth: no authenticator (give a credentials file, JWT keys, or allow anonymous access explicitly)")
	}
	if err := coord.ValidateID(c.ID); err != nil {
		return fmt.Errorf("--id: %w", err)
	}
	for _, a := range []struct{ flag, addr string }{
		{"--mqtt", c.MQTTAddr}, {"--internal", c.InternalAddr}, {"--admin", c.AdminAddr},
	} {
		if err := validateAddr(a.addr); err != nil {
			return fmt.Errorf("%s %q: %w", a.flag, a.addr, err)
		}
	}
	if c.AdvertiseInternal != "" {
		if host, _, err := net.SplitHostPort(c.AdvertiseInternal); err != nil || host == "" {
			return fmt.Errorf("--advertise-internal %q: want host:port", c.AdvertiseInternal)
		}
	}
	if c.InboxPrefix == "" || strings.ContainsAny(c.InboxPrefix, "+#") {
		return fmt.Errorf("inbox prefix %q: must be non-empty and without wildcards", c.InboxPrefix)
	}
	l := c.Limits
	switch {
	case l.MaxPacketSize < 128:
		return fmt.Errorf("max packet size %d: too small (minimum 128 bytes)", l.MaxPacketSize)
	case l.MaxClients <= 0:
		return fmt.Errorf("max clients %d: must be positive", l.MaxClients)
	case l.MaxSessionExpiry == 0:
		return fmt.Errorf("max session expiry: must be positive")
	case l.ReceiveMaximum == 0:
		return fmt.Errorf("receive maximum %d: must be positive", l.ReceiveMaximum)
	case l.MaxInflight == 0:
		return fmt.Errorf("max inflight %d: must be positive", l.MaxInflight)
	case l.WritesPending <= 0:
		return fmt.Errorf("writes pending %d: must be positive", l.WritesPending)
	case l.ConnRatePerIP < 0 || (l.ConnRatePerIP > 0 && l.ConnBurstPerIP <= 0):
		return fmt.Errorf("connection rate %g/s per address must not be negative, and its burst %d must be positive", l.ConnRatePerIP, l.ConnBurstPerIP)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"max wait", c.MaxWait}, {"store timeout", c.StoreTimeout}, {"write timeout", c.WriteTimeout},
		{"shutdown timeout", c.ShutdownTimeout}, {"health interval", c.Health.Interval},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s %v: must be positive", d.name, d.v)
		}
	}
	if c.Quarantine.Grace < 0 || c.Quarantine.MoveRate <= 0 {
		return fmt.Errorf("quarantine grace %v must not be negative and move rate %d must be positive",
			c.Quarantine.Grace, c.Quarantine.MoveRate)
	}
	if c.DrainBatch <= 0 || c.MailboxLimit <= 0 {
		return fmt.Errorf("drain batch %d and mailbox limit %d must be positive", c.DrainBatch, c.MailboxLimit)
	}
	if c.Window <= 0 || c.OutboxLimit <= 0 || c.MaxQueuedBytes <= 0 {
		return fmt.Errorf("window %d, outbox limit %d and max queued bytes %d must be positive",
			c.Window, c.OutboxLimit, c.MaxQueuedBytes)
	}
	if err := (lease.Config{Node: c.ID, Duration: c.Lease.Duration, Interval: c.Lease.Interval}).Validate(); err != nil {
		return err
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
