package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/switchboard-mqtt/switchboard/store"
)

// maxRetries is how often go-redis retries a command after a timeout or a dropped
// connection. Retrying is safe because every script is idempotent (see the package
// documentation); two retries ride out a connection the server closed while it sat idle.
const maxRetries = 2

// dialAttempts is how often go-redis tries to open one connection. One: a refused dial is
// retried by maxRetries like any other failure, so a store whose Redis is down fails fast
// with the dial error instead of spending its deadline on redials.
const dialAttempts = 1

// Store is a store.Store on Redis. It is safe for concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	keys    keys
	where   string // the server, for error messages
	log     *slog.Logger
	scripts scripts
	grace   time.Duration // keyGrace; tests shorten it

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// New connects to Redis as cfg says and returns once Redis answered a PING. When Redis
// cannot be reached within cfg.DialTimeout the error names the address and wraps
// store.ErrUnavailable.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Store{
		keys:    keys{prefix: cfg.Prefix},
		log:     cfg.Logger,
		scripts: newScripts(),
		grace:   keyGrace,
	}
	if len(cfg.SentinelAddrs) > 0 {
		s.where = fmt.Sprintf("primary %q via sentinels %s", cfg.MasterName, strings.Join(cfg.SentinelAddrs, ","))
		s.rdb = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:    cfg.MasterName,
			SentinelAddrs: cfg.SentinelAddrs,
			Password:      cfg.Password,
			DB:            cfg.DB,
			MaxRetries:    maxRetries,
			DialerRetries: dialAttempts,
			DialTimeout:   cfg.DialTimeout,
			ReadTimeout:   cfg.ReadTimeout,
			WriteTimeout:  cfg.WriteTimeout,
			PoolSize:      cfg.PoolSize,
			TLSConfig:     cfg.TLS,
			// Let the caller's deadline bound each call, as store.Store promises.
			ContextTimeoutEnabled: true,
		})
	} else {
		s.where = cfg.Addr
		s.rdb = redis.NewClient(&redis.Options{
			Addr:                  cfg.Addr,
			Password:              cfg.Password,
			DB:                    cfg.DB,
			MaxRetries:            maxRetries,
			DialerRetries:         dialAttempts,
			DialTimeout:           cfg.DialTimeout,
			ReadTimeout:           cfg.ReadTimeout,
			WriteTimeout:          cfg.WriteTimeout,
			PoolSize:              cfg.PoolSize,
			TLSConfig:             cfg.TLS,
			ContextTimeoutEnabled: true,
			// Maintenance notifications are a Redis Enterprise/Cloud feature; a self-hosted
			// Redis refuses the handshake.
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		})
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := s.checkServer(pctx); err != nil {
		s.rdb.Close()
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	return s, nil
}

// checkServer pings Redis and checks that it is 7.0 or later (the scripts use
// PEXPIRETIME, and TIME followed by writes, which needs effects replication).
func (s *Store) checkServer(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	info, err := s.rdb.Info(ctx, "server").Result()
	if err != nil {
		return s.fail("server info", err)
	}
	for line := range strings.Lines(info) {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:")
		if !ok {
			continue
		}
		major, _, _ := strings.Cut(v, ".")
		if n, err := strconv.Atoi(major); err == nil && n < 7 {
			return fmt.Errorf("redis %s is version %s; redisstore needs 7.0 or later", s.where, v)
		}
	}
	return nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.fail("ping", s.rdb.Ping(ctx).Err())
}

// Close releases the store's connections. Idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.rdb.Close() })
	return s.closeErr
}
