package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/etcdcoord"
	"github.com/switchboard-mqtt/switchboard/coord/zkcoord"
	"github.com/switchboard-mqtt/switchboard/internal/tlsconf"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
)

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet("switchboard "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parse parses args, then fills every flag not given on the command line from its
// environment variable SWITCHBOARD_<NAME> (upper case, '-' as '_'), then, for a role's
// command, every flag still not given from the --config file (config.go).
func parse(fs *flag.FlagSet, args []string) error {
	cf := roleConfig(fs)
	if cf != nil && cf.probe != nil {
		cf.probe.fs = fs
		if cf.probe.stage == probeFlags {
			return errProbed
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{explainFlagError(fs, err)}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		set[f.Name] = true
		if m, ok := f.Value.(commandLineMarker); ok {
			m.markCommandLine() // a secret in the process list: see warnSecrets
		}
	})
	markAliases(set)
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		key := envName(f.Name)
		if now, ok := flagAliases[f.Name]; ok && fs.Lookup(now) != nil {
			if _, ok := os.LookupEnv(envName(now)); ok {
				return // the new name's variable wins
			}
		}
		if v, ok := os.LookupEnv(key); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", key, v, err))
			}
		}
	})
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	warnMisspelledEnv(fs)
	if cf != nil && cf.path != "" {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		markAliases(given)
		return cf.apply(fs, given)
	}
	return nil
}

// notFlagVars are the SWITCHBOARD_* variables that are not a flag's: the scripts' and tests'.
var notFlagVars = map[string]bool{
	"SWITCHBOARD_CONFIG": true, "SWITCHBOARD_INSTALL_BENCH": true,
	"SWITCHBOARD_TEST_RACE": true, "SWITCHBOARD_WRITE_SCREENSHOT": true,
}

// warnMisspelledEnv warns of every SWITCHBOARD_* variable that is no flag's variable, of this
// command or of any role, but is at most two letters off one of this command's: a typo
// (SWITCHBOARD_SESION_TIMEOUT) would otherwise leave the flag at its default without a word.
// Variables meant for another command are left alone: one environment often serves several.
func warnMisspelledEnv(fs *flag.FlagSet) {
	mine := map[string]string{} // variable → flag
	fs.VisitAll(func(f *flag.Flag) { mine[envName(f.Name)] = f.Name })
	var anyRole map[string]bool
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "SWITCHBOARD_") || mine[name] != "" || notFlagVars[name] {
			continue
		}
		near, nearD := "", 3
		for v := range mine {
			if d := editDistance(name, v); d < nearD || d == nearD && v < near {
				near, nearD = v, d
			}
		}
		if near == "" {
			continue
		}
		if anyRole == nil {
			anyRole = roleVariables()
		}
		if !anyRole[name] {
			fmt.Fprintf(fs.Output(), "%s: warning: %s is set but is no flag's variable; did you mean %s (--%s)?\n",
				fs.Name(), name, near, mine[near])
		}
	}
}

// roleVariables returns the variable of every flag some role defines.
func roleVariables() map[string]bool {
	vars := map[string]bool{}
	for _, role := range roleNames() {
		fs, err := roleFlags(role)
		if err != nil {
			continue // roleFlags fails only on a mistake in this package, which its tests find
		}
		fs.VisitAll(func(f *flag.Flag) { vars[envName(f.Name)] = true })
	}
	return vars
}

// explainFlagError rewrites the flag package's "flag needs an argument: -wait" to say what
// the value is, e.g. "--wait needs a duration such as 30s", and adds the same to an invalid
// duration's "invalid value ... for flag -wait".
func explainFlagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		if f := fs.Lookup(name); f != nil {
			return fmt.Errorf("--%s needs %s", name, valueKind(f))
		}
		return err
	}
	if _, rest, ok := strings.Cut(msg, " for flag -"); ok && strings.HasPrefix(msg, "invalid value ") {
		name, _, _ := strings.Cut(rest, ":")
		if f := fs.Lookup(name); f != nil {
			if kind, _ := flag.UnquoteUsage(f); kind == "duration" {
				return fmt.Errorf("%w (--%s takes %s)", err, name, valueKind(f))
			}
		}
	}
	return err
}

// valueKind names the kind of value a flag takes, for an error.
func valueKind(f *flag.Flag) string {
	switch kind, _ := flag.UnquoteUsage(f); kind {
	case "duration":
		return "a duration such as 30s"
	case "int", "uint", "float":
		return "a number"
	default:
		return "a value"
	}
}

// flagAliases maps a flag's old name to its name now. Both are defined on the same variable;
// the command line, the environment and the config file accept either, the new name wins
// where both are given at the same level, and a name given at a higher level (a flag over
// the environment over the file) wins whichever name it uses. The example file and
// `config check` show only the new name.
var flagAliases = map[string]string{
	"zk-root":         "coord-root",
	"zk-dial-timeout": "coord-dial-timeout",
}

// isAlias reports whether name is a flag's old name.
func isAlias(name string) bool { _, ok := flagAliases[name]; return ok }

// namesOf returns a flag's name and then its old names.
func namesOf(name string) []string {
	names := []string{name}
	for old, now := range flagAliases {
		if now == name {
			names = append(names, old)
		}
	}
	return names
}

// markAliases marks both names of a flag given under either.
func markAliases(given map[string]bool) {
	for old, now := range flagAliases {
		if given[old] || given[now] {
			given[old], given[now] = true, true
		}
	}
}

// logOptions are the logging flags every long-running command takes.
type logOptions struct {
	level  string
	format string
}

func (o *logOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.format, "log-format", "text", "log format: text or json")
}

func (o *logOptions) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", o.level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch o.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", o.format)
}

// coordOptions are the flags that reach the coordination backend: a ZooKeeper ensemble
// (--zk) or an etcd cluster (--etcd), exactly one.
type coordOptions struct {
	servers        string
	etcd           string
	root           string
	sessionTimeout time.Duration
	dialTimeout    time.Duration
	auth           secretFlag
	authValue      string // auth, read by validate
}

func (o *coordOptions) register(fs *flag.FlagSet) {
	d := zkcoord.DefaultConfig()
	fs.StringVar(&o.servers, "zk", "", "ZooKeeper servers, comma-separated host:port (all of the ensemble)")
	fs.StringVar(&o.etcd, "etcd", "", "etcd endpoints, comma-separated (instead of --zk)")
	fs.StringVar(&o.root, "coord-root", d.Root, "ZooKeeper znode or etcd key prefix under which Switchboard keeps its state")
	fs.StringVar(&o.root, "zk-root", d.Root, "the old name of --coord-root")
	fs.DurationVar(&o.sessionTimeout, "session-timeout", d.SessionTimeout,
		"ZooKeeper session timeout / etcd lease TTL: how soon a dead node leaves the live set")
	fs.DurationVar(&o.dialTimeout, "coord-dial-timeout", d.DialTimeout, "how long to wait for the coordination backend (ZooKeeper or etcd) at start-up")
	fs.DurationVar(&o.dialTimeout, "zk-dial-timeout", d.DialTimeout, "the old name of --coord-dial-timeout")
	o.auth.register(fs, "zk-auth", "the ZooKeeper digest credentials user:password (znodes Switchboard creates are then writable only with them)")
}

// validate checks the flags without connecting.
func (o *coordOptions) validate() error {
	auth, err := o.auth.get()
	if err != nil {
		return err
	}
	o.authValue = auth
	switch {
	case o.servers == "" && o.etcd == "":
		return usagef("--zk (comma-separated host:port of the ZooKeeper ensemble) or --etcd is required " +
			"(status, quarantine and release need neither while `switchboard up` runs in the current directory)")
	case o.servers != "" && o.etcd != "":
		return usagef("give --zk or --etcd, not both")
	case o.etcd != "":
		if err := o.etcdConfig(nil).Validate(); err != nil {
			return usageError{coordFieldFlags.rename(err)}
		}
	default:
		if len(splitList(o.servers)) == 0 {
			return usagef("--zk %q: no host:port in it", o.servers)
		}
		if err := o.zkConfig(nil).Validate(); err != nil {
			return usageError{coordFieldFlags.rename(err)}
		}
	}
	return nil
}

// coordFieldFlags names the flag behind each coordination config field the backends' errors name.
var coordFieldFlags = fieldFlags{
	"Root": "--coord-root", "SessionTimeout": "--session-timeout", "DialTimeout": "--coord-dial-timeout",
	"Servers": "--zk", "Endpoints": "--etcd",
}

func (o *coordOptions) zkConfig(log *slog.Logger) zkcoord.Config {
	return zkcoord.Config{Settings: o.settings(log), Servers: splitList(o.servers), Auth: o.authValue}
}

func (o *coordOptions) etcdConfig(log *slog.Logger) etcdcoord.Config {
	return etcdcoord.Config{Settings: o.settings(log), Endpoints: splitList(o.etcd)}
}

// settings are the flags every backend takes.
func (o *coordOptions) settings(log *slog.Logger) coord.Settings {
	return coord.Settings{Root: o.root, SessionTimeout: o.sessionTimeout, DialTimeout: o.dialTimeout, Logger: log}
}

// open connects to the backend the flags name.
func (o *coordOptions) open(ctx context.Context, log *slog.Logger) (coord.Coordinator, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.etcd != "" {
		return etcdcoord.New(ctx, o.etcdConfig(log))
	}
	return zkcoord.New(ctx, o.zkConfig(log))
}

// openDiscovered opens a coordinator for an operator command (status, quarantine, release)
// on the cluster discover finds; the command reports its own errors, so it logs nothing.
func (o *coordOptions) openDiscovered(ctx context.Context, fs *flag.FlagSet, e env) (coord.Coordinator, error) {
	if err := o.discover(fs, e); err != nil {
		return nil, err
	}
	return o.open(ctx, slog.New(slog.DiscardHandler))
}

// redisOptions are the flags that reach Redis.
type redisOptions struct {
	addr      string
	sentinels string
	master    string
	cluster   string
	password  secretFlag
	prefix    string
	tls       tlsOptions
	// durability and durabilityTimeout are redisstore.Config's.
	durability        string
	durabilityTimeout time.Duration
	// clientName names the connections (redisstore.ClientName), set by the command.
	clientName string
}

func (o *redisOptions) register(fs *flag.FlagSet) {
	redisAddrVar(fs, &o.addr) // host:port or a redis:// URL (redisurl.go)
	fs.StringVar(&o.sentinels, "redis-sentinels", "", "Redis Sentinel addresses, comma-separated (instead of --redis)")
	fs.StringVar(&o.master, "redis-master", "mymaster", "Sentinel master name")
	fs.StringVar(&o.cluster, "redis-cluster", "", "Redis Cluster nodes, comma-separated host:port (some of them are enough; instead of --redis)")
	fs.StringVar(&o.durability, "redis-durability", "",
		"what a write has survived when it is acknowledged: none (the primary has it), replica (a replica has it too: WAIT), "+
			"aof (fsynced, on a replica too if any: WAITAOF, Redis 7.2+); empty: replica if the primary has a replica at start, else none with a warning")
	fs.DurationVar(&o.durabilityTimeout, "redis-durability-timeout", redisstore.DefaultConfig().DurabilityTimeout,
		"how long a batch of writes waits for its replica (or fsync) before it is refused (503)")
	o.password.register(fs, "redis-password", "the Redis password")
	fs.StringVar(&o.prefix, "redis-prefix", "sb", "key prefix")
	o.tls.registerClient(fs, "redis-tls-", "connections to Redis (a cert/key is sent as a client certificate)")
}

// given reports whether any flag names a Redis to use.
func (o *redisOptions) given() bool { return o.addr != "" || o.sentinels != "" || o.cluster != "" }

func (o *redisOptions) open(ctx context.Context, log *slog.Logger) (*redisstore.Store, error) {
	cfg, err := o.config(log)
	if err != nil {
		return nil, err
	}
	return redisstore.New(ctx, cfg)
}

// config builds and validates the store's configuration without connecting.
func (o *redisOptions) config(log *slog.Logger) (redisstore.Config, error) {
	if !o.given() {
		return redisstore.Config{}, usagef("--redis is required (host:port or a redis:// URL; or --redis-sentinels, or --redis-cluster)")
	}
	cfg := redisstore.DefaultConfig()
	cfg.Addr = o.addr
	cfg.ClusterAddrs = splitList(o.cluster)
	cfg.Durability = redisstore.Durability(o.durability)
	cfg.DurabilityTimeout = o.durabilityTimeout
	cfg.SentinelAddrs = splitList(o.sentinels)
	if len(cfg.SentinelAddrs) > 0 {
		cfg.MasterName = o.master
	}
	var err error
	if cfg.Password, err = o.password.get(); err != nil {
		return cfg, err
	}
	cfg.Prefix = o.prefix
	tlsCfg, err := o.tls.client("redis-tls-")
	if err != nil {
		return cfg, err
	}
	cfg.TLS = tlsCfg
	if err := applyRedisURL(&cfg); err != nil {
		return cfg, err
	}
	cfg.Logger = log
	cfg.ClientName = o.clientName
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{err}
	}
	return cfg, nil
}

// tlsOptions are a certificate, its key and a CA, for one listener or client.
type tlsOptions struct {
	cert, key, ca string
}

func (o *tlsOptions) register(fs *flag.FlagSet, prefix, what string) {
	o.registerAs(fs, prefix, what, "CA file: peers must present a certificate it signed (mutual TLS) for "+what)
}

// registerClient registers the flags of a connection this process only dials: its CA
// verifies the server.
func (o *tlsOptions) registerClient(fs *flag.FlagSet, prefix, what string) {
	o.registerAs(fs, prefix, what, "CA file that verifies the server's certificate, for "+what)
}

func (o *tlsOptions) registerAs(fs *flag.FlagSet, prefix, what, caHelp string) {
	fs.StringVar(&o.cert, prefix+"cert", "", "TLS certificate file for "+what)
	fs.StringVar(&o.key, prefix+"key", "", "TLS key file for "+what)
	fs.StringVar(&o.ca, prefix+"ca", "", caHelp)
}

func (o *tlsOptions) set() bool { return o.cert != "" || o.key != "" || o.ca != "" }

// server returns the listener side (nil when no flag is set).
func (o *tlsOptions) server(flagPrefix string) (*tls.Config, error) {
	if !o.set() {
		return nil, nil
	}
	cfg, err := tlsconf.Server(o.cert, o.key, o.ca)
	if err != nil {
		return nil, usagef("--%scert/--%skey/--%sca: %v", flagPrefix, flagPrefix, flagPrefix, err)
	}
	return cfg, nil
}

// client returns the dialing side (nil when no flag is set).
func (o *tlsOptions) client(flagPrefix string) (*tls.Config, error) {
	if !o.set() {
		return nil, nil
	}
	cfg, err := tlsconf.Client(o.ca, o.cert, o.key)
	if err != nil {
		return nil, usagef("--%scert/--%skey/--%sca: %v", flagPrefix, flagPrefix, flagPrefix, err)
	}
	return cfg, nil
}

// authOptions are the flags that say who may connect to a node.
type authOptions struct {
	file           string
	anonymous      bool
	hs256File      string
	rs256File      string
	issuer         string
	audience       string
	reloadInterval time.Duration
}

func (o *authOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.file, "auth-file", "", "credentials and ACL file (JSON; `switchboard passwd` adds users); reloaded on change")
	fs.BoolVar(&o.anonymous, "allow-anonymous", false, "admit clients without credentials (each may read only its own inbox)")
	fs.StringVar(&o.hs256File, "jwt-hs256-secret-file", "", "file holding the HS256 secret for JWT passwords (sub = client id)")
	fs.StringVar(&o.rs256File, "jwt-rs256-public-key", "", "PEM file of the RS256 public key for JWT passwords")
	fs.StringVar(&o.issuer, "jwt-issuer", "", "required JWT iss")
	fs.StringVar(&o.audience, "jwt-audience", "", "required JWT aud")
	fs.DurationVar(&o.reloadInterval, "auth-reload", auth.DefaultReloadInterval, "how often the auth file is checked for changes")
}

// open builds the authenticator; with no credentials configured it refuses to start
// unless anonymous access was asked for.
func (o *authOptions) open(inboxPrefix string, log *slog.Logger) (*auth.Authenticator, error) {
	cfg := auth.DefaultConfig()
	cfg.File, cfg.AllowAnonymous, cfg.InboxPrefix = o.file, o.anonymous, inboxPrefix
	cfg.ReloadInterval, cfg.Logger = o.reloadInterval, log
	if o.hs256File != "" || o.rs256File != "" {
		j := &auth.JWTConfig{Issuer: o.issuer, Audience: o.audience}
		if o.hs256File != "" {
			secret, err := os.ReadFile(o.hs256File)
			if err != nil {
				return nil, usagef("--jwt-hs256-secret-file: %v", err)
			}
			j.HS256Secret = []byte(strings.TrimSpace(string(secret)))
		}
		if o.rs256File != "" {
			pem, err := os.ReadFile(o.rs256File)
			if err != nil {
				return nil, usagef("--jwt-rs256-public-key: %v", err)
			}
			if j.RS256PublicKey, err = auth.LoadRS256PublicKey(pem); err != nil {
				return nil, usagef("--jwt-rs256-public-key %s: %v", o.rs256File, err)
			}
		}
		cfg.JWT = j
	}
	if cfg.File == "" && cfg.JWT == nil && !cfg.AllowAnonymous {
		return nil, usagef("no way for clients to authenticate: give --auth-file and/or --jwt-*, or --allow-anonymous explicitly")
	}
	if cfg.AllowAnonymous {
		log.Warn("anonymous MQTT clients are admitted (--allow-anonymous); each may read only its own inbox")
	}
	a, err := auth.New(cfg)
	if err != nil {
		return nil, usageError{err}
	}
	return a, nil
}

// proxyOptions are the PROXY protocol flags of a node's MQTT and WebSocket listeners.
type proxyOptions struct {
	on      bool
	trusted string
}

func (o *proxyOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.on, "proxy-protocol", false,
		"require a PROXY protocol v1/v2 header on every MQTT and WebSocket connection (from --proxy-trusted only; others are closed)")
	fs.StringVar(&o.trusted, "proxy-trusted", "",
		"comma-separated addresses or CIDR prefixes of the proxies that may send PROXY headers (required with --proxy-protocol)")
}

func (o *proxyOptions) get() (bool, []netip.Prefix, error) {
	out, err := parsePrefixes("proxy-trusted", o.trusted)
	if err != nil {
		return false, nil, err
	}
	if len(out) > 0 && !o.on {
		return false, nil, usagef("--proxy-trusted without --proxy-protocol: give both, or neither")
	}
	return o.on, out, nil
}

// parsePrefixes reads the value of flag name: comma-separated addresses (each its own
// prefix) or CIDR prefixes.
func parsePrefixes(name, list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range splitList(list) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, usagef("--%s %q: want an address or a CIDR prefix (10.0.0.0/8)", name, s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
