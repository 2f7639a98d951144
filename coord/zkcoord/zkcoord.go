// Package zkcoord implements coord.Coordinator on a ZooKeeper ensemble with
// github.com/go-zookeeper/zk.
//
// Layout under Root (default /switchboard):
//
//	nodes/<id>             ephemeral, JSON coord.Member; epoch = czxid
//	quarantine/<id>        persistent, JSON coord.Quarantine
//	election/<name>/...    ephemeral sequential candidates, lowest leads
//
// The library's quirks stay in here: its calls take no context (we wrap them), its watches
// fire once (we re-arm them and re-list after every reconnect), it re-opens an expired
// session without re-creating ephemeral znodes (registration does that), it keeps the granted
// session timeout to itself (we read it off the connect response), it waits a minute for a
// frozen server's connect response (we bound that wait), and a client cut off from every
// server cannot learn that its session expired.
//
// Fencing follows coord.State's rule, with T the shorter of the session timeout asked for and
// the one granted (Coordinator.timeout). go-zookeeper reports a silent link only after its
// receive timeout (2T/3), which would leave a member acting live for up to 5T/3, so a
// coord.Prober sends Syncs to keep H (liveness.go), and a server that leaves one unanswered
// for T/4 is left for the next; the library's disconnects count besides (regSession.Standing).
//
// The probe is a Sync, not a read: a server answers a Sync only after a round trip to the
// leader, whose session tracker expires sessions, while a follower cut off from the leader
// can answer reads for syncLimit ticks as the leader expires its clients' sessions. A
// follower reports its clients' activity in its answers to the leader's pings (every half
// tick), so if it is cut off just after answering a Sync, the leader may have heard of this
// session up to a probe interval and half a tick before H: the margin does not cover that.
package zkcoord

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// Config configures a Coordinator. Its SessionTimeout (at least 500ms) is asked of the servers,
// which clamp it to 2-20 ticks; the coordinator times itself by the shorter of it and the grant.
type Config struct {
	coord.Settings
	// Servers are the ensemble's client addresses (host:port). Required.
	Servers []string
	// Auth, "user:password", authenticates with ZooKeeper's digest scheme: the znodes created
	// are then writable only with it, and readable by anyone (so `switchboard status` needs none).
	Auth string
	// Dial opens connections to the servers (tests cut them for real). Default net.DialTimeout.
	Dial func(network, address string, timeout time.Duration) (net.Conn, error)
}

// DefaultConfig returns a Config with every default filled in except Servers.
func DefaultConfig() Config { return Config{Settings: coord.DefaultSettings()} }

// Validate checks the configuration without side effects.
func (c Config) Validate() error {
	if len(c.Servers) == 0 {
		return errors.New("zk: Servers: no servers given (want the host:port of each ensemble member)")
	}
	for _, s := range c.Servers {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			return fmt.Errorf("zk: server %q: %w", s, cmp.Or(err, errors.New("missing port")))
		}
	}
	if c.Auth != "" {
		if u, p, ok := strings.Cut(c.Auth, ":"); !ok || u == "" || p == "" {
			return errors.New("zk: auth must be user:password")
		}
	}
	return c.Settings.Validate("zk", time.Second/2)
}

// session is what the event callback knows about the ZooKeeper session.
type session struct {
	connected bool
	gen       uint64 // bumped every time a session is (re)established, so watchers re-list
}

// Coordinator is a coord.Coordinator on ZooKeeper.
type Coordinator struct {
	cfg  Config
	log  *slog.Logger
	conn *zk.Conn
	acl  []zk.ACL

	nodesDir, quarDir, electDir string

	sess       notify.Value[session]
	prober     *coord.Prober             // keeps the liveness record (liveness.go)
	negotiated atomic.Int64              // lowest session timeout a server granted, in ns
	link       atomic.Pointer[sniffConn] // the connection the library dialled last
	g          *coord.Group              // goroutines owned by the coordinator (registrations, watches)
}

var _ coord.Coordinator = (*Coordinator)(nil)

// New connects to the ensemble and returns once a session is established, or fails within
// DialTimeout with an error naming the servers tried.
func New(ctx context.Context, cfg Config) (*Coordinator, error) {
	cfg.Settings = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Dial == nil {
		cfg.Dial = net.DialTimeout
	}
	c := &Coordinator{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "zk"),
		acl:      zk.WorldACL(zk.PermAll),
		nodesDir: cfg.Root + "/nodes",
		quarDir:  cfg.Root + "/quarantine",
		electDir: cfg.Root + "/election",
		g:        coord.NewGroup(),
	}
	c.prober = coord.NewProber(time.Time{}, c.timeout, c.sync)
	conn, _, err := zk.Connect(cfg.Servers, cfg.SessionTimeout,
		zk.WithEventCallback(c.onEvent),
		zk.WithLogger(zkLogger{c.log}),
		zk.WithLogInfo(false),
		zk.WithMaxBufferSize(4<<20),
		zk.WithDialer(c.dial),
	)
	if err != nil {
		return nil, fmt.Errorf("zk: connect to %s: %w", strings.Join(cfg.Servers, ","), err)
	}
	c.conn = conn
	if cfg.Auth != "" {
		user, pass, _ := strings.Cut(cfg.Auth, ":")
		c.acl = append(zk.DigestACL(zk.PermAll, user, pass), zk.WorldACL(zk.PermRead)...)
		// The library re-sends the credentials after every reconnect.
		if err := conn.AddAuth("digest", []byte(cfg.Auth)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("zk: digest auth: %w", err)
		}
	}

	wctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := c.waitSession(wctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("zk: no session with any of %s within %v: %w",
			strings.Join(cfg.Servers, ","), cfg.DialTimeout, coord.ErrUnavailable)
	}
	for _, p := range []string{c.nodesDir, c.quarDir, c.electDir} {
		// A young session's connection may drop (a server restarting): try again within
		// DialTimeout, as for the session itself, unless the servers refused the request.
		err := c.ensurePath(wctx, p)
		for err != nil && !refused(err) && notify.Sleep(wctx, 100*time.Millisecond, nil) {
			err = c.ensurePath(wctx, p)
		}
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("zk: create %s: %w", p, err)
		}
	}
	// Go cannot fail: nobody else holds c yet, so nobody can have closed it.
	_ = c.g.Go(func() { c.prober.Run(context.Background(), c.g.Closed(), 0) })
	return c, nil
}

// onEvent runs on the library's goroutine and must not block.
func (c *Coordinator) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	switch ev.State {
	case zk.StateHasSession:
		c.sess.Update(func(s session) session { s.connected = true; s.gen++; return s })
	case zk.StateDisconnected, zk.StateExpired:
		c.sess.Update(func(s session) session { s.connected = false; return s })
	}
}

// waitSession blocks until the client has a session, returning its generation.
func (c *Coordinator) waitSession(ctx context.Context) (uint64, error) {
	for {
		// Closed first: the library may report a session it regained while Close ran.
		select {
		case <-c.g.Closed():
			return 0, coord.ErrClosed
		default:
		}
		s, changed := c.sess.Get()
		if s.connected {
			return s.gen, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-c.g.Closed():
			return 0, coord.ErrClosed
		}
	}
}

// Close ends the session; the ensemble deletes this process's ephemeral znodes at once.
func (c *Coordinator) Close() error {
	c.g.Close(func() {
		c.sess.Update(func(s session) session { s.connected = false; return s })
		c.conn.Close()
	})
	return nil
}

// call runs a context-less library call, returning early when ctx ends; the call finishes in
// the background (every request is answered or flushed on disconnect).
func call[T any](ctx context.Context, f func() (T, error)) (T, error) {
	ch := make(chan pair[T, error], 1)
	go func() {
		v, err := f()
		ch <- pair[T, error]{v, err}
	}()
	select {
	case r := <-ch:
		return r.a, r.b
	case <-ctx.Done():
		return *new(T), ctx.Err()
	}
}

type pair[A, B any] struct {
	a A
	b B
}

// call2 and call3 are call for a library call on path p with two or three results.
func call2[A, B any](ctx context.Context, f func(p string) (A, B, error), p string) (A, B, error) {
	r, err := call(ctx, func() (pair[A, B], error) { a, b, err := f(p); return pair[A, B]{a, b}, err })
	return r.a, r.b, err
}

func call3[A, B, C any](ctx context.Context, f func(p string) (A, B, C, error), p string) (A, B, C, error) {
	ab, c, err := call2(ctx, func(p string) (pair[A, B], C, error) {
		a, b, c, err := f(p)
		return pair[A, B]{a, b}, c, err
	}, p)
	return ab.a, ab.b, c, err
}

// delete is conn.Delete through call.
func (c *Coordinator) delete(ctx context.Context, p string, version int32) error {
	_, err := call(ctx, func() (struct{}, error) { return struct{}{}, c.conn.Delete(p, version) })
	return err
}

// bounded bounds ctx by OverdueAfter(T), so that a call lost on a silent link is made again.
func (c *Coordinator) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, coord.OverdueAfter(c.timeout()))
}

// ensurePath creates p and its parents as persistent znodes if they are missing.
func (c *Coordinator) ensurePath(ctx context.Context, p string) error {
	cur := ""
	for part := range strings.SplitSeq(strings.TrimPrefix(p, "/"), "/") {
		cur += "/" + part
		// Look first: creating under a parent we may not write fails with NoAuth even when
		// the child exists.
		ok, _, err := call2(ctx, c.conn.Exists, cur)
		if err == nil && !ok {
			_, err = call(ctx, func() (string, error) { return c.conn.Create(cur, nil, 0, c.acl) })
		}
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	return nil
}

// refused reports whether err is an answer that asking again will not change (auth, ACLs, path).
func refused(err error) bool {
	return errors.Is(err, zk.ErrNoAuth) || errors.Is(err, zk.ErrAuthFailed) || errors.Is(err, zk.ErrInvalidACL) ||
		errors.Is(err, zk.ErrBadArguments) || errors.Is(err, zk.ErrInvalidPath)
}

// wrap maps errors callers branch on to coord's; ErrUnavailable: retry once the session settles.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrNoNode):
		return fmt.Errorf("%s: %w", op, coord.ErrNotFound)
	case errors.Is(err, zk.ErrConnectionClosed), errors.Is(err, zk.ErrNoServer), errors.Is(err, zk.ErrSessionExpired),
		errors.Is(err, zk.ErrSessionMoved), errors.Is(err, zk.ErrClosing):
		return fmt.Errorf("%s: %w: %v", op, coord.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func (c *Coordinator) markPath(id string) string { return c.quarDir + "/" + id }

// zkLogger logs the library at debug, as it repeats a connection failure every second.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "source", "go-zookeeper")
}
