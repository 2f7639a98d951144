package coord

import (
	"cmp"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Settings are what every real backend's Config has (zkcoord and etcdcoord embed them). A
// zero setting means its default.
type Settings struct {
	// Root is the ZooKeeper znode or etcd key prefix under which everything lives: absolute,
	// with neither a trailing nor a doubled '/'. Default "/switchboard".
	Root string
	// SessionTimeout is the ZooKeeper session timeout or etcd lease TTL: how long after losing
	// contact a member leaves the live set. Each backend says how its servers apply it.
	// Default 10s.
	SessionTimeout time.Duration
	// DialTimeout bounds New's wait for the backend to answer. Default 10s.
	DialTimeout time.Duration
	// Logger receives the adapter's and its client library's logs. Default slog.Default().
	Logger *slog.Logger
}

// DefaultSettings returns Settings with every default filled in.
func DefaultSettings() Settings {
	return Settings{Root: "/switchboard", SessionTimeout: 10 * time.Second, DialTimeout: 10 * time.Second, Logger: slog.Default()}
}

// WithDefaults returns s with every zero setting replaced by its default.
func (s Settings) WithDefaults() Settings {
	d := DefaultSettings()
	return Settings{Root: cmp.Or(s.Root, d.Root), SessionTimeout: cmp.Or(s.SessionTimeout, d.SessionTimeout),
		DialTimeout: cmp.Or(s.DialTimeout, d.DialTimeout), Logger: cmp.Or(s.Logger, d.Logger)}
}

// Validate checks s without side effects, naming backend ("zk", "etcd") and the field in its
// errors; minTimeout is the shortest SessionTimeout the backend takes. One rule for Root
// serves ZooKeeper paths and etcd keys.
func (s Settings) Validate(backend string, minTimeout time.Duration) error {
	if p := s.Root; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//")) {
		return fmt.Errorf("%s: Root %q must be an absolute key path like /switchboard", backend, p)
	}
	if s.SessionTimeout != 0 && s.SessionTimeout < minTimeout {
		return fmt.Errorf("%s: SessionTimeout %v is too short (minimum %v)", backend, s.SessionTimeout, minTimeout)
	}
	if s.DialTimeout < 0 {
		return fmt.Errorf("%s: DialTimeout %v is negative", backend, s.DialTimeout)
	}
	return nil
}
