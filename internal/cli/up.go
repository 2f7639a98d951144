package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-mqtt/switchboard/store/redisstore"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/etcdcoord"
	"github.com/switchboard-mqtt/switchboard/internal/etcdembed"
	"github.com/switchboard-mqtt/switchboard/internal/progress"
	"github.com/switchboard-mqtt/switchboard/monitor"
	"github.com/switchboard-mqtt/switchboard/node"
	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/embedded"
	"github.com/switchboard-mqtt/switchboard/watcher"
)

// upOptions are `switchboard up`'s flags.
type upOptions struct {
	nodes    int
	mqttPort int
	wsPort   int
	api      string
	dataDir  string
	authFile string
	co       coordOptions
	redis    redisOptions
}

func runUp(ctx context.Context, e env, args []string) error {
	fs := newRoleFlagSet("up", e)
	var (
		lo logOptions
		o  upOptions
	)
	lo.register(fs)
	o.co.register(fs)
	o.redis.register(fs)
	fs.IntVar(&o.nodes, "nodes", 3, "broker nodes to run")
	fs.IntVar(&o.mqttPort, "mqtt-port", 1883, "MQTT port of the first node; the others take the next ports")
	fs.IntVar(&o.wsPort, "ws-port", 0, "MQTT over WebSocket port of the first node, the others take the next ports (0: no WebSocket)")
	fs.StringVar(&o.api, "api", "127.0.0.1:8080", "router API listen address")
	fs.StringVar(&o.dataDir, "data-dir", ".switchboard", "where the embedded coordination and store keep their data")
	fs.StringVar(&o.authFile, "auth-file", "",
		"credentials and ACL file for the nodes (anonymous clients stay admitted and get its global rules; default: each client its own inbox only)")
	// A development cluster reacts quickly, and its banner and tour come first: the roles'
	// log is warnings only unless -v or --log-level asks for more.
	setDefault(fs, "session-timeout", "5s")
	setDefault(fs, "log-level", "warn")
	var verbose bool
	fs.BoolVar(&verbose, "v", false, "log what the roles do (--log-level info; --log-level debug for more)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if verbose && !flagSet(fs, "log-level") {
		lo.level = "info"
	}
	if o.nodes < 1 || o.nodes > 64 {
		return usagef("--nodes %d: want 1 to 64", o.nodes)
	}
	if o.mqttPort < 1 || o.mqttPort+o.nodes-1 > 65535 {
		return usagef("--mqtt-port %d: out of range for %d nodes", o.mqttPort, o.nodes)
	}
	if o.wsPort < 0 || o.wsPort+o.nodes-1 > 65535 || (o.wsPort > 0 && o.wsPort < o.mqttPort+o.nodes && o.mqttPort < o.wsPort+o.nodes) {
		return usagef("--ws-port %d: out of range for %d nodes, or overlapping the MQTT ports", o.wsPort, o.nodes)
	}
	if err := o.apiOnLoopback(); err != nil {
		return err
	}
	if err := o.apiPortFree(); err != nil {
		return err
	}
	if o.co.servers != "" || o.co.etcd != "" {
		if err := o.co.validate(); err != nil {
			return err
		}
	}
	if o.redis.given() {
		if _, err := o.redis.config(nil); err != nil {
			return err
		}
	}
	prog := startProgress(e, false)
	defer prog.Stop()
	log, err := lo.logger(prog.Interleave(e.stderr))
	if err != nil {
		return err
	}
	warnSecrets(fs, log)
	// Read before anything starts, so that a bad file is the first and only error (and
	// `config check` finds it). The first-run tour connects mosquitto_sub without credentials.
	authn, err := auth.New(auth.Config{AllowAnonymous: true, File: o.authFile})
	if err != nil {
		return usageError{err}
	}
	if err := e.validated(fs); err != nil {
		return err
	}

	// Everything that can be refused is checked before anything starts.
	unlock, err := lockDataDir(o.dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	var mqttL []net.Listener
	for i := range o.nodes {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", o.mqttPort+i))
		if err != nil {
			closeAll(mqttL)
			return fmt.Errorf("MQTT port for node-%d: %w", i+1, err)
		}
		mqttL = append(mqttL, l)
		if o.wsPort > 0 {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", o.wsPort+i))
			if err != nil {
				closeAll(mqttL)
				return fmt.Errorf("WebSocket port for node-%d: %w", i+1, err)
			}
			mqttL = append(mqttL, l)
		}
	}
	closeAll(mqttL) // nodes bind them again below; the check was that they are free
	apiL, err := net.Listen("tcp", o.api)
	if err != nil {
		return fmt.Errorf("--api %s: %w", o.api, err)
	}
	defer apiL.Close()

	u := &upCluster{log: log, prog: prog}
	defer u.close()
	if err := u.startBackends(ctx, o); err != nil {
		return err
	}
	if err := u.startRoles(ctx, o, authn, apiL); err != nil {
		return err
	}
	prog.Stop()
	removeDiscovery, err := writeDiscovery(o.dataDir, u.discovery(o, apiL.Addr().String()))
	if err != nil {
		return err
	}
	defer removeDiscovery()
	u.printTour(e, o)
	<-ctx.Done()
	fmt.Fprintln(e.stderr, "stopping...")
	return nil
}

// upCluster is everything `up` runs, in the order it stops it.
type upCluster struct {
	log     *slog.Logger
	prog    *progress.Line // the start-up's status line
	etcd    *etcdembed.Server
	st      store.Store
	stores  string // how the store was described to the user
	coordBy string
	coords  []coord.Coordinator
	nodes   []*node.Node
	router  *router.Server
	reaper  *watcher.Reaper
	monitor *monitor.Monitor
}

func (u *upCluster) startBackends(ctx context.Context, o upOptions) error {
	var err error
	switch {
	case o.redis.given():
		u.stores = "Redis at " + redactURL(o.redis.addr) + o.redis.sentinels + o.redis.cluster
		u.prog.Set("connecting to %s", u.stores)
		o.redis.clientName = redisstore.ClientName("up", "")
		if u.st, err = o.redis.open(ctx, u.log); err != nil {
			return err
		}
	default:
		u.prog.Set("opening the embedded store in %s", filepath.Join(o.dataDir, "store"))
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := embedded.Open(sctx, embedded.Config{Dir: filepath.Join(o.dataDir, "store"), Logger: u.log})
		if err != nil {
			return err // not into u.st: a nil *embedded.Store there is a store close would call
		}
		u.st = st
		u.stores = "embedded store in " + filepath.Join(o.dataDir, "store")
	}
	switch {
	case o.co.servers != "":
		u.coordBy = "ZooKeeper at " + o.co.servers
	case o.co.etcd != "":
		u.coordBy = "etcd at " + o.co.etcd
	default:
		u.prog.Set("starting the embedded etcd in %s", filepath.Join(o.dataDir, "etcd"))
		ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if u.etcd, err = etcdembed.Start(ectx, filepath.Join(o.dataDir, "etcd"), u.log); err != nil {
			return err
		}
		u.coordBy = "embedded etcd at " + u.etcd.Endpoint() + " (data in " + filepath.Join(o.dataDir, "etcd") + ")"
	}
	return nil
}

// newCoord gives one role its own session (its own ephemeral entries and elections).
func (u *upCluster) newCoord(ctx context.Context, o upOptions) (coord.Coordinator, error) {
	var c coord.Coordinator
	var err error
	if u.etcd != nil {
		c, err = etcdcoord.New(ctx, etcdcoord.Config{Client: u.etcd.Client(),
			Settings: coord.Settings{Root: o.co.root, SessionTimeout: o.co.sessionTimeout, Logger: u.log}})
	} else {
		c, err = o.co.open(ctx, u.log)
	}
	if err != nil {
		return nil, err
	}
	u.coords = append(u.coords, c)
	return c, nil
}

// startRoles runs the nodes, a router and a monitor: the same code as the standalone
// commands.
func (u *upCluster) startRoles(ctx context.Context, o upOptions, authn *auth.Authenticator, apiL net.Listener) error {
	for i := range o.nodes {
		u.prog.Set("starting node-%d of %d", i+1, o.nodes)
		c, err := u.newCoord(ctx, o)
		if err != nil {
			return err
		}
		cfg := node.DefaultConfig()
		cfg.ID = fmt.Sprintf("node-%d", i+1)
		cfg.MQTTAddr = fmt.Sprintf("127.0.0.1:%d", o.mqttPort+i)
		if o.wsPort > 0 {
			cfg.WSAddr = fmt.Sprintf("127.0.0.1:%d", o.wsPort+i)
		}
		cfg.InternalAddr = "127.0.0.1:0"
		cfg.AdminAddr = "127.0.0.1:0"
		cfg.DataDir = o.dataDir
		cfg.Auth = authn
		cfg.Quarantine.Grace = 2 * time.Second
		n, err := node.Start(ctx, cfg, node.Deps{Coord: c, Store: u.st, Logger: u.log})
		if err != nil {
			return err
		}
		u.nodes = append(u.nodes, n)
	}
	u.prog.Set("starting the router on %s", o.api)
	rc, err := u.newCoord(ctx, o)
	if err != nil {
		return err
	}
	if u.router, err = router.Start(ctx, router.DefaultConfig(), router.Deps{Coord: rc, Store: u.st, Listener: apiL, Logger: u.log}); err != nil {
		return err
	}
	if u.reaper, err = watcher.StartReaper(ctx, watcher.ReaperConfig{Candidate: "router-up"},
		watcher.ReaperDeps{Coord: rc, Store: u.st, Logger: u.log}); err != nil {
		return err
	}
	u.prog.Set("starting the monitor")
	mc, err := u.newCoord(ctx, o)
	if err != nil {
		return err
	}
	mcfg := monitor.DefaultConfig()
	mcfg.ID = "monitor-up"
	// The monitor's admin endpoint, on a free loopback port: the dashboard reads its probes
	// there (the address goes with its candidacy).
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("monitor admin: %w", err)
	}
	if u.monitor, err = monitor.Start(ctx, mcfg, monitor.Deps{Coord: mc, Admin: ml, Logger: u.log}); err != nil {
		ml.Close()
		return err
	}
	return nil
}

// close stops everything in reverse order; the store and embedded etcd last, so their
// files are closed cleanly.
func (u *upCluster) close() {
	if u.monitor != nil {
		u.monitor.Close()
	}
	if u.reaper != nil {
		u.reaper.Close()
	}
	if u.router != nil {
		_ = u.router.Close()
	}
	for _, n := range u.nodes {
		_ = n.Close(context.Background())
	}
	for _, c := range u.coords {
		_ = c.Close()
	}
	if u.st != nil {
		_ = u.st.Close()
	}
	if u.etcd != nil {
		_ = u.etcd.Close()
	}
}

func (u *upCluster) printTour(e env, o upOptions) {
	w := e.stdout
	fmt.Fprintf(w, "\nSwitchboard is up: %d nodes, a router and a monitor, in this process.\n\n", len(u.nodes))
	// A mark outlives up in its data dir: a node still quarantined from an earlier run refuses
	// MQTT clients, so it is marked here and the tour connects to a node in service.
	tourNode := u.nodes[0]
	inService := false
	for _, n := range u.nodes {
		m := n.Member()
		ws := ""
		if a := n.WebSocketAddrs()["ws"]; a != "" {
			ws = "   ws://" + a + "/mqtt"
		}
		fmt.Fprintf(w, "  %-8s mqtt://%s%s   admin http://%s/healthz\n", m.ID, m.MQTTAddr, ws, m.AdminAddr)
		if st, _ := n.Registration().Status(); st.Mark != nil {
			fmt.Fprintf(w, "           QUARANTINED (%s): `switchboard release %s` brings it back\n", st.Mark.Reason, m.ID)
		} else if !inService {
			tourNode, inService = n, true
		}
	}
	fmt.Fprintf(w, "  router   http://%s   (POST /v1/messages)\n", o.api)
	fmt.Fprintf(w, "  dashboard http://%s/ui\n", o.api)
	fmt.Fprintf(w, "  coordination: %s\n  store:        %s\n\n", u.coordBy, u.stores)
	host, port, _ := net.SplitHostPort(tourNode.Member().MQTTAddr)
	api := "http://" + o.api
	fmt.Fprintf(w, "Anonymous MQTT clients are admitted and the API needs no token: this is a development cluster.\n\n")
	fmt.Fprintf(w, "Try it:\n")
	fmt.Fprintf(w, "  mosquitto_sub -h %s -p %s -i alice -q 1 -t inbox/alice\n", host, port)
	// In the directory of up's default data dir the commands find the cluster by
	// themselves (discover.go); elsewhere they are told where it is.
	apiFlag, coordFlag := "", ""
	if filepath.Clean(o.dataDir) != defaultUpDir {
		apiFlag = " --api " + api
		if u.etcd != nil {
			coordFlag = " --etcd " + u.etcd.Endpoint()
		}
	}
	fmt.Fprintf(w, "  switchboard send%s --to alice 'hello alice'\n", apiFlag)
	fmt.Fprintf(w, "  switchboard mailbox%s --to bob\n", apiFlag)
	fmt.Fprintf(w, "  switchboard status%s\n\n", coordFlag)
	fmt.Fprintf(w, "Ctrl-C stops everything; messages waiting in mailboxes are kept in %s.\n", o.dataDir)
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

// flagSet reports whether a flag was given on the command line or in the environment.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// lockDataDir makes sure dir exists, is writable and is not used by another running `up`.
func lockDataDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--data-dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--data-dir %s is not writable: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("--data-dir %s is in use by another `switchboard up` (pid %s); stop it or choose another --data-dir",
				dir, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("--data-dir %s: lock: %w", dir, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// apiOnLoopback refuses an --api off loopback: up's API and dashboard take every request
// without a token, and everything else of up listens on 127.0.0.1 only. ":8080" listened
// on every interface and said nothing.
func (o *upOptions) apiOnLoopback() error {
	host, _, err := net.SplitHostPort(o.api)
	if err != nil {
		return usagef("--api %s: want HOST:PORT, such as 127.0.0.1:8080 (%v)", o.api, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return usagef("--api %s: up's API takes requests without a token, so it listens on loopback only "+
		"(127.0.0.1:PORT); serve other hosts with `switchboard router` and --api-tokens", o.api)
}

// apiPortFree refuses an --api on one of the nodes' own ports of 127.0.0.1 (up binds the API
// before the nodes, which would then fail as if another program held their port).
func (o *upOptions) apiPortFree() error {
	host, p, err := net.SplitHostPort(o.api)
	if err != nil {
		return nil // the listener says what is wrong with it
	}
	switch host {
	case "", "localhost", "127.0.0.1", "0.0.0.0", "::": // where the nodes' 127.0.0.1 ports are
	default:
		return nil
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil // a service name: the listener says what is wrong with it
	}
	for _, r := range []struct {
		flag, what string
		first      int
	}{{"--mqtt-port", "MQTT", o.mqttPort}, {"--ws-port", "WebSocket", o.wsPort}} {
		if r.first > 0 && port >= r.first && port < r.first+o.nodes {
			return usagef("--api %s: port %d is node-%d's %s port (%s %d gives the %d nodes %d-%d); choose another",
				o.api, port, port-r.first+1, r.what, r.flag, r.first, o.nodes, r.first, r.first+o.nodes-1)
		}
	}
	return nil
}
