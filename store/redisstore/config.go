package redisstore

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Config says how to reach Redis and how to name keys.
type Config struct {
	// Addr is the host:port of a standalone Redis. Required unless SentinelAddrs or
	// ClusterAddrs is set.
	Addr string
	// SentinelAddrs are host:port addresses of Sentinels; with MasterName they select
	// Sentinel mode, in which the client follows the primary across failovers.
	SentinelAddrs []string
	// MasterName is the name the Sentinels monitor the primary under.
	MasterName string
	// ClusterAddrs are host:port addresses of some nodes of a Redis Cluster (one is
	// enough; the client learns the others and follows slots as they move).
	ClusterAddrs []string
	// Durability is what an acknowledged write has survived (see Durability); the zero
	// value chooses at New: DurabilityReplica when every primary reports a connected
	// replica, else DurabilityNone, with a warning.
	Durability Durability
	// DurabilityTimeout bounds the wait for replicas (or fsyncs) after a batch of writes;
	// a wait that runs out fails the call with store.ErrUnavailable. It must be shorter
	// than ReadTimeout. Zero means the default.
	DurabilityTimeout time.Duration
	// Username is the ACL user (Redis 6 and later) Password belongs to; empty means the
	// default user.
	Username string
	// Password authenticates to Redis (not to the Sentinels).
	Password string
	// TLS, if set, makes connections to Redis TLS (with a client certificate when the
	// configuration has one).
	TLS *tls.Config
	// DB is the Redis database number.
	DB int
	// Prefix starts every key; it must not contain '{' or '}', which would move the
	// hash tag. Empty means the default.
	Prefix string
	// DialTimeout bounds opening a connection, and New's first PING. Zero means default.
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for a reply. Zero means default.
	ReadTimeout time.Duration
	// WriteTimeout bounds sending a command. Zero means default.
	WriteTimeout time.Duration
	// ClientName names every connection (CLIENT SETNAME), so that CLIENT LIST shows which
	// process holds each; see ClientName. Empty leaves the connections unnamed; a refusal
	// (an ACL user without the command, a proxy that does not pass it) is ignored.
	ClientName string
	// PoolSize is the maximum number of connections; zero means go-redis's default of 10
	// per CPU.
	PoolSize int
	// Logger receives warnings about best-effort steps that failed. Nil discards them.
	Logger *slog.Logger
}

// Defaults applied by DefaultConfig and by New to zero fields.
const (
	defaultPrefix            = "sb"
	defaultTimeout           = 2 * time.Second
	defaultDurabilityTimeout = 500 * time.Millisecond
)

// DefaultConfig returns a Config for a standalone Redis on localhost with every default
// filled in.
func DefaultConfig() Config {
	return Config{
		Addr:         "127.0.0.1:6379", // Redis's standard port
		Prefix:       defaultPrefix,    // keys look like sb:{c:...}:q
		DialTimeout:  defaultTimeout,   // a local or LAN Redis answers in well under a second
		ReadTimeout:  defaultTimeout,   // longer than any of our scripts should ever run
		WriteTimeout: defaultTimeout,
		// Chosen at New: replica when every primary has a connected replica, else none.
		Durability: DurabilityAuto,
		// A replica on the same LAN acknowledges in about a round trip; one that has not
		// in half a second is cut off or far behind, and the write is refused (503).
		DurabilityTimeout: defaultDurabilityTimeout,
		PoolSize:          0,   // go-redis default: 10 per CPU
		Logger:            nil, // discard
	}
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = defaultPrefix
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = defaultTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = defaultTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = defaultTimeout
	}
	if c.DurabilityTimeout == 0 {
		c.DurabilityTimeout = min(defaultDurabilityTimeout, c.ReadTimeout/2)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem with c, each naming the field and its value. Zero values
// that have a default are valid.
func (c Config) Validate() error {
	var errs []error
	var modes []string
	if c.Addr != "" {
		modes = append(modes, fmt.Sprintf("Addr %q", c.Addr))
	}
	if len(c.SentinelAddrs) > 0 {
		modes = append(modes, fmt.Sprintf("SentinelAddrs %q", c.SentinelAddrs))
	}
	if len(c.ClusterAddrs) > 0 {
		modes = append(modes, fmt.Sprintf("ClusterAddrs %q", c.ClusterAddrs))
	}
	switch {
	case len(modes) == 0:
		errs = append(errs, errors.New("missing Addr: required unless SentinelAddrs or ClusterAddrs is set"))
	case len(modes) > 1:
		errs = append(errs, fmt.Errorf("%s set: use one", strings.Join(modes, " and ")))
	}
	for i, a := range c.ClusterAddrs {
		if err := checkHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("bad ClusterAddrs[%d] %q: %w", i, a, err))
		}
	}
	if len(c.ClusterAddrs) > 0 && c.DB != 0 {
		errs = append(errs, fmt.Errorf("DB %d with ClusterAddrs: Redis Cluster has database 0 only", c.DB))
	}
	switch c.Durability {
	case DurabilityAuto, DurabilityNone, DurabilityReplica, DurabilityAOF:
	default:
		errs = append(errs, fmt.Errorf("bad Durability %q: want none, replica, aof or empty (chosen at start)", c.Durability))
	}
	if c.DurabilityTimeout < 0 {
		errs = append(errs, fmt.Errorf("negative DurabilityTimeout %v", c.DurabilityTimeout))
	}
	if read := cmp.Or(c.ReadTimeout, defaultTimeout); c.DurabilityTimeout >= read {
		errs = append(errs, fmt.Errorf("DurabilityTimeout %v must be shorter than ReadTimeout %v (the wait is one command)", c.DurabilityTimeout, read))
	}
	if c.Addr != "" {
		if err := checkHostPort(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("bad Addr %q: %w", c.Addr, err))
		}
	}
	for i, a := range c.SentinelAddrs {
		if err := checkHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("bad SentinelAddrs[%d] %q: %w", i, a, err))
		}
	}
	if len(c.SentinelAddrs) > 0 && c.MasterName == "" {
		errs = append(errs, errors.New("missing MasterName: required with SentinelAddrs"))
	}
	if c.MasterName != "" && len(c.SentinelAddrs) == 0 {
		errs = append(errs, fmt.Errorf("stray MasterName %q: needs SentinelAddrs", c.MasterName))
	}
	if c.DB < 0 {
		errs = append(errs, fmt.Errorf("negative DB %d", c.DB))
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		errs = append(errs, fmt.Errorf("bad Prefix %q: must not contain '{' or '}'", c.Prefix))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"DialTimeout", c.DialTimeout}, {"ReadTimeout", c.ReadTimeout}, {"WriteTimeout", c.WriteTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("negative %s %v", d.name, d.v))
		}
	}
	if strings.IndexFunc(c.ClientName, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		errs = append(errs, fmt.Errorf("bad ClientName %q: Redis takes printable ASCII without spaces", c.ClientName))
	}
	if c.PoolSize < 0 {
		errs = append(errs, fmt.Errorf("negative PoolSize %d", c.PoolSize))
	}
	if len(errs) > 0 {
		return fmt.Errorf("redisstore config: %w", errors.Join(errs...))
	}
	return nil
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port")
	}
	if host == "" || port == "" {
		return errors.New("want host:port")
	}
	return nil
}

// ClientName is the connection name of a switchboard process: "switchboard-", its role
// (node, router, monitor, up), "-" and its id (if any), with any character Redis refuses in a name (a
// space, a control character, anything outside printable ASCII) replaced by '_'.
func ClientName(role, id string) string {
	name := "switchboard-" + role
	if id != "" {
		name += "-" + id
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, name)
}
