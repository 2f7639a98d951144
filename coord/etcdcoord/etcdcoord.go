// Package etcdcoord implements coord.Coordinator on an etcd v3 cluster.
//
// Layout under Root (default /switchboard):
//
//	nodes/<id>              JSON coord.Member, attached to the registration's lease; epoch = create revision
//	quarantine/<id>         JSON coord.Quarantine, no lease
//	election/<name>/<lease> candidates (keyed as concurrency.Election keys them), lowest create revision leads
//
// Every registration and campaign has a lease of its own, so losing one never disturbs another;
// Close revokes them all, so this process's entries vanish at once. The registration and
// election machines are package coord's, timed by the lease TTL. A client cut off from the
// cluster cannot learn that its lease expired, so the coordinator keeps each lease alive itself
// (keeper, in lease.go, says why not with the library's KeepAlive). Every library call waits for
// a ready connection unless its context ends, so every call here is bounded.
package etcdcoord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/notify"
	"github.com/switchboard-mqtt/switchboard/internal/zapslog"
)

// MinSessionTTL is the shortest SessionTimeout accepted. etcd grants leases in whole seconds and
// raises a TTL below 1.5 election timeouts (2s by default) to that; the coordinator always
// times itself by the TTL granted.
const MinSessionTTL = 2 * time.Second

// Config configures a Coordinator. Of its Settings, SessionTimeout is the lease TTL, rounded up
// to whole seconds, and at least MinSessionTTL.
type Config struct {
	coord.Settings
	// Endpoints are the cluster's client URLs, host:port or http(s)://host:port; unused with Client.
	Endpoints []string
	// Client, if set, is used instead (a client of an embedded server, say); Close leaves it open.
	Client *clientv3.Client
}

// DefaultConfig returns a Config with every default filled in except Endpoints.
func DefaultConfig() Config { return Config{Settings: coord.DefaultSettings()} }

// Validate checks the configuration without side effects.
func (c Config) Validate() error {
	if c.Client == nil {
		if len(c.Endpoints) == 0 {
			return errors.New("etcd: Endpoints is empty (give host:port or http://host:port, or a Client)")
		}
		for _, e := range c.Endpoints {
			if err := validateEndpoint(e); err != nil {
				return fmt.Errorf("etcd: Endpoints: %q: %w", e, err)
			}
		}
	}
	return c.Settings.Validate("etcd", MinSessionTTL)
}

func validateEndpoint(e string) error {
	if strings.Contains(e, "://") {
		u, err := url.Parse(e)
		switch {
		case err != nil:
			return err
		case u.Scheme != "http" && u.Scheme != "https":
			return fmt.Errorf("scheme %q is not http or https", u.Scheme)
		}
		e = u.Host
	}
	if host, port, err := net.SplitHostPort(e); err != nil || host == "" || port == "" {
		return errors.New("want host:port or http(s)://host:port")
	}
	return nil
}

// Coordinator is a coord.Coordinator on etcd.
type Coordinator struct {
	cfg   Config
	log   *slog.Logger
	cli   *clientv3.Client
	owned bool          // cli was created by New and is closed by Close
	ttl   time.Duration // SessionTimeout rounded up to whole seconds

	nodesPfx, quarPfx, electPfx string

	// linkGen counts the times the connection became ready; every change of state wakes it.
	linkGen notify.Value[uint64]
	g       *coord.Group // the goroutines owned by the coordinator

	mu     sync.Mutex
	leases map[*keeper]struct{} // live leases, revoked by Close
}

var _ coord.Coordinator = (*Coordinator)(nil)

// New returns once the cluster answers a linearizable read, or fails within DialTimeout with
// an error that names the endpoints tried and wraps coord.ErrUnavailable.
func New(ctx context.Context, cfg Config) (*Coordinator, error) {
	cfg.Settings = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Coordinator{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "etcd"),
		ttl:      (cfg.SessionTimeout + time.Second - 1).Truncate(time.Second),
		nodesPfx: cfg.Root + "/nodes/",
		quarPfx:  cfg.Root + "/quarantine/",
		electPfx: cfg.Root + "/election/",
		g:        coord.NewGroup(),
		leases:   map[*keeper]struct{}{},
	}
	where := "the given client"
	c.cli = cfg.Client
	if c.cli == nil {
		where = strings.Join(cfg.Endpoints, ",")
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   cfg.Endpoints,
			DialTimeout: cfg.DialTimeout,
			// Pings find a silently dead connection; etcd refuses pings more often than 5s
			// and gRPC clamps the interval to at least 10s.
			DialKeepAliveTime:    10 * time.Second,
			DialKeepAliveTimeout: 5 * time.Second,
			Logger:               zapslog.New(c.log.With("source", "etcd-client"), slog.LevelWarn),
			// gRPC's default reconnect backoff grows to two minutes: after a long outage a
			// member would come back that long after the cluster did. Half a TTL at most.
			DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2,
					MaxDelay: max(time.Second, c.ttl/2),
				},
				MinConnectTimeout: cfg.DialTimeout,
			})},
		})
		if err != nil {
			return nil, fmt.Errorf("etcd: client for %s: %w", where, err)
		}
		c.cli, c.owned = cli, true
	}

	wctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := c.cli.Get(wctx, cfg.Root+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		if c.owned {
			c.cli.Close()
		}
		return nil, fmt.Errorf("etcd: no answer from %s within %v: %w (%v)", where, cfg.DialTimeout, coord.ErrUnavailable, err)
	}
	// An in-process client has no connection to lose.
	if conn := c.cli.ActiveConnection(); conn != nil {
		_ = c.g.Go(func() { c.watchLink(conn) }) // nobody else holds c yet: it cannot be closed
	}
	return c, nil
}

// watchLink follows the connection's state until Close, waking linkGen's waiters at every
// change: a lost link makes registrations Suspended at once, not once a keepalive is overdue
// (they ask linkReady); a regained one bumps the generation, so that watchers list again.
func (c *Coordinator) watchLink(conn *grpc.ClientConn) {
	ctx, cancel := notify.CancelOn(context.Background(), c.g.Closed(), nil)
	defer cancel()
	var wasReady bool
	for st := conn.GetState(); ; st = conn.GetState() {
		ready := st == connectivity.Ready
		c.linkGen.Update(func(gen uint64) uint64 {
			if ready && !wasReady {
				gen++
			}
			return gen
		})
		wasReady = ready
		if !conn.WaitForStateChange(ctx, st) {
			return
		}
	}
}

// linkReady reports whether the connection is ready now, asking it, not the watched state,
// which can lag a moment behind a call that just succeeded.
func (c *Coordinator) linkReady() bool {
	conn := c.cli.ActiveConnection()
	return conn == nil || conn.GetState() == connectivity.Ready
}

// Close revokes every lease (the entries vanish at once) and closes the client New created.
func (c *Coordinator) Close() error {
	c.g.Close(func() {
		c.mu.Lock()
		ks := slices.Collect(maps.Keys(c.leases))
		c.mu.Unlock()
		var wg sync.WaitGroup
		for _, k := range ks {
			wg.Go(func() {
				if err := k.revokeWithinTTL(); err != nil {
					c.log.Warn("revoke lease on close", "lease", k.hex(), "error", err)
				}
			})
		}
		wg.Wait()
		if c.owned {
			c.cli.Close()
		}
	})
	return nil
}

// wrap names op, and adds coord.ErrUnavailable to a deadline or a cluster that cannot serve now.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	s, isStatus := status.FromError(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded), isStatus && s.Code() == codes.Unavailable,
		errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrTimeout),
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail), errors.Is(err, rpctypes.ErrLeaderChanged):
		return fmt.Errorf("%s: %w: %w", op, coord.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
