package cli

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store/redisstore"
)

// urlFlag is the value of a flag that may hold a URL with a password in it (--redis). Like
// a secret's, it is marked when given on the command line, so warnSecrets can warn about
// the password there; it prints itself with the password redacted.
type urlFlag struct {
	dst           *string
	name          string
	instead       string // where the password belongs instead, for the warning
	onCommandLine bool
}

func (u *urlFlag) String() string {
	if u == nil || u.dst == nil {
		return ""
	}
	return redactURL(*u.dst)
}

func (u *urlFlag) Set(s string) error {
	*u.dst = s
	return nil
}

// Get returns the value as given (flag.Getter), password included.
func (u *urlFlag) Get() any { return *u.dst }

func (u *urlFlag) markCommandLine() { u.onCommandLine = true }

// redisAddrVar defines --redis: host:port, or a redis:// or rediss:// URL.
func redisAddrVar(fs *flag.FlagSet, dst *string) {
	fs.Var(&urlFlag{dst: dst, name: "redis",
		instead: "--redis-password-file or SWITCHBOARD_REDIS_PASSWORD (or the whole URL in SWITCHBOARD_REDIS)"}, "redis",
		"Redis `address` (presence and mailboxes): host:port, or a URL redis://[user[:password]@]host[:port][/db], rediss:// for TLS")
}

// redactURL returns s with the password of a URL replaced by xxxxx; anything else as is.
func redactURL(s string) string {
	if !hasURLPassword(s) {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	return u.Redacted()
}

// applyRedisURL interprets cfg.Addr when it is a redis:// or rediss:// URL, as redis-cli
// and go-redis do: the user, password and database come from it, and rediss:// turns TLS
// on (verified against the system's roots unless --redis-tls-ca is given). A password in
// the URL and one from --redis-password(-file) together are refused: which one is meant?
func applyRedisURL(cfg *redisstore.Config) error {
	if !strings.Contains(cfg.Addr, "://") {
		return nil
	}
	u, err := url.Parse(cfg.Addr)
	if err != nil {
		// url's error quotes the whole value, password and all.
		return usagef("--redis: not a valid redis:// URL (the value is not shown: it may hold a password)")
	}
	shown := redactURL(cfg.Addr)
	switch u.Scheme {
	case "redis", "rediss":
	default:
		return usagef("--redis %s: want host:port or a redis:// or rediss:// URL", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return usagef("--redis %s: options in the URL are not taken; use the --redis-* flags", shown)
	}
	opt, err := redis.ParseURL(cfg.Addr)
	if err != nil {
		return usagef("--redis %s: %v", shown, redactErr(err, cfg.Addr))
	}
	cfg.Addr = opt.Addr
	cfg.Username = opt.Username
	cfg.DB = opt.DB
	if opt.Password != "" {
		if cfg.Password != "" {
			return usagef("--redis: the URL has a password and --redis-password (or its file) gives another: give one")
		}
		cfg.Password = opt.Password
	}
	if u.Scheme == "rediss" {
		if cfg.TLS == nil {
			cfg.TLS = opt.TLSConfig // verified against the system's roots, ServerName from the URL
		} else {
			cfg.TLS = cfg.TLS.Clone() // the --redis-tls-* configuration, for this host
			if cfg.TLS.ServerName == "" {
				cfg.TLS.ServerName = u.Hostname()
			}
		}
		if cfg.TLS.MinVersion == 0 {
			cfg.TLS.MinVersion = tls.VersionTLS12
		}
	}
	return nil
}

// redactErr keeps a URL's password out of an error message that may quote it.
func redactErr(err error, raw string) error {
	u, perr := url.Parse(raw)
	if perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return err
	}
	return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}
