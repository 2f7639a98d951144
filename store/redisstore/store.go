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
	rdb         redis.UniversalClient
	keys        keys
	where       string // the server, for error messages
	log         *slog.Logger
	scripts     scripts
	grace       time.Duration // keyGrace; tests shorten it
	durability  Durability    // as chosen at New
	wait        *waitSpec     // what durable writes wait for; nil for DurabilityNone
	epochs      epochCache
	connects    batchQueue[*connectCall]
	disconnects batchQueue[*disconnectCall]
	peeks       batchQueue[*peekCall]
	lookups     batchQueue[*lookupCall]
	flushers    sync.WaitGroup // the batch queues' flushers

	guard  *guard   // the outage guard; nil on a cluster, which has one a node (guards)
	guards sync.Map // on a cluster: node address -> its *guard

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
	useLibraryLog(cfg.Logger)
	s := &Store{
		keys:    keys{prefix: cfg.Prefix},
		log:     cfg.Logger,
		scripts: newScripts(),
		grace:   keyGrace,
	}
	s.connects = batchQueue[*connectCall]{s: s, write: s.connectBatch}
	s.disconnects = batchQueue[*disconnectCall]{s: s, write: s.disconnectBatch}
	s.peeks = batchQueue[*peekCall]{s: s, write: s.peekBatch}
	s.lookups = batchQueue[*lookupCall]{s: s, write: s.lookupBatch}
	// Maintenance notifications are a Redis Enterprise/Cloud feature; a self-hosted Redis
	// refuses the handshake.
	noMaint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	switch {
	case len(cfg.ClusterAddrs) > 0:
		s.where = "cluster " + strings.Join(cfg.ClusterAddrs, ",")
		c := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                    cfg.ClusterAddrs,
			Username:                 cfg.Username,
			Password:                 cfg.Password,
			MaxRetries:               maxRetries,
			DialerRetries:            dialAttempts,
			DialTimeout:              cfg.DialTimeout,
			ReadTimeout:              cfg.ReadTimeout,
			WriteTimeout:             cfg.WriteTimeout,
			OnConnect:                nameConn(cfg.ClientName),
			PoolSize:                 cfg.PoolSize,
			TLSConfig:                cfg.TLS,
			ContextTimeoutEnabled:    true,
			MaintNotificationsConfig: noMaint,
		})
		// A wait must follow the writes on the connection that sent them: each node's
		// share of a pipeline (see waitHook). And each node has its own guard, first: a
		// dead primary must fail its own slots' calls fast, not the healthy ones' (one
		// guard over the cluster counts every node's failures together and trips on a
		// third of the calls failing). Registered before any node is created.
		c.OnNewNode(func(node *redis.Client) {
			g := newGuard(s.log, node.Options().Addr)
			s.guards.Store(node.Options().Addr, g)
			node.AddHook(g)
			node.AddHook(waitHook{})
		})
		s.rdb = c
	case len(cfg.SentinelAddrs) > 0:
		s.where = fmt.Sprintf("primary %q via sentinels %s", cfg.MasterName, strings.Join(cfg.SentinelAddrs, ","))
		s.rdb = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:    cfg.MasterName,
			SentinelAddrs: cfg.SentinelAddrs,
			Username:      cfg.Username,
			Password:      cfg.Password,
			DB:            cfg.DB,
			MaxRetries:    maxRetries,
			DialerRetries: dialAttempts,
			DialTimeout:   cfg.DialTimeout,
			ReadTimeout:   cfg.ReadTimeout,
			WriteTimeout:  cfg.WriteTimeout,
			OnConnect:     nameConn(cfg.ClientName),
			PoolSize:      cfg.PoolSize,
			TLSConfig:     cfg.TLS,
			// Let the caller's deadline bound each call, as store.Store promises.
			ContextTimeoutEnabled: true,
		})
	default:
		s.where = cfg.Addr
		s.rdb = redis.NewClient(&redis.Options{
			Addr:                     cfg.Addr,
			Username:                 cfg.Username,
			Password:                 cfg.Password,
			DB:                       cfg.DB,
			MaxRetries:               maxRetries,
			DialerRetries:            dialAttempts,
			DialTimeout:              cfg.DialTimeout,
			ReadTimeout:              cfg.ReadTimeout,
			WriteTimeout:             cfg.WriteTimeout,
			OnConnect:                nameConn(cfg.ClientName),
			PoolSize:                 cfg.PoolSize,
			TLSConfig:                cfg.TLS,
			ContextTimeoutEnabled:    true,
			MaintNotificationsConfig: noMaint,
		})
	}
	if _, cluster := s.rdb.(*redis.ClusterClient); !cluster {
		// The guard first, so that a call it refuses reaches no other hook.
		s.guard = newGuard(s.log, s.where)
		s.rdb.AddHook(s.guard)
		s.rdb.AddHook(waitHook{})
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := s.checkServer(pctx); err != nil {
		s.rdb.Close()
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	wait, err := s.chooseDurability(pctx, cfg)
	if err != nil {
		s.rdb.Close()
		return nil, err
	}
	// Loaded now so that the first call of each script costs no NOSCRIPT round trip (and,
	// when durable, no second wait). A server that loses them later (a restart, a
	// failover to a replica that never saw them) is answered by evalAll.
	for _, sc := range s.scripts.all() {
		if err := sc.Load(pctx, s.rdb).Err(); err != nil {
			s.rdb.Close()
			return nil, fmt.Errorf("redisstore: %w", s.fail("load scripts", err))
		}
	}
	s.wait = wait
	s.log.Info("redisstore: connected", "redis", s.where, "durability", string(s.durability))
	return s, nil
}

// guardOf returns the outage guard of the server that holds key: the one guard, or on a
// cluster the guard of the primary its slot maps to (nil while the slot map is not known).
func (s *Store) guardOf(ctx context.Context, key string) *guard {
	c, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return s.guard
	}
	m, err := c.MasterForKey(ctx, key)
	if err != nil {
		return nil
	}
	g, _ := s.guards.Load(m.Options().Addr)
	g2, _ := g.(*guard)
	return g2
}

// Durability is the durability New settled on: Config.Durability, or what it chose.
func (s *Store) Durability() Durability { return s.durability }

// checkServer pings Redis and checks that every primary is 7.0 or later (the scripts use
// PEXPIRETIME, and TIME followed by writes, which needs effects replication).
func (s *Store) checkServer(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	err := s.eachPrimary(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return s.fail("server info", err)
		}
		v := infoFields(info)["redis_version"]
		major, _, _ := strings.Cut(v, ".")
		if n, err := strconv.Atoi(major); err == nil && n < 7 {
			return fmt.Errorf("redis %s is version %s; redisstore needs 7.0 or later", c.Options().Addr, v)
		}
		return nil
	})
	return err
}

// Ping checks that Redis answers: the one server, or every primary of a cluster.
func (s *Store) Ping(ctx context.Context) error {
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		return s.fail("ping", c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return m.Ping(ctx).Err()
		}))
	}
	return s.fail("ping", s.rdb.Ping(ctx).Err())
}

// Close releases the store's connections. Idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.rdb.Close()
		s.flushers.Wait() // a batch under way fails fast on the closed client
	})
	return s.closeErr
}

// nameConn names each new connection (CLIENT SETNAME) when name is set, and does not
// fail the connection when Redis, a proxy in front of it or the ACL user refuses the
// command: a name is for CLIENT LIST, not worth a store that cannot connect. (go-redis's
// own ClientName fails the connection instead.)
func nameConn(name string) func(context.Context, *redis.Conn) error {
	if name == "" {
		return nil
	}
	return func(ctx context.Context, cn *redis.Conn) error {
		_ = cn.ClientSetName(ctx, name).Err()
		return nil
	}
}
