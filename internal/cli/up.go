package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/coord/zkcoord"
	"github.com/switchboard-mqtt/switchboard/monitor"
	"github.com/switchboard-mqtt/switchboard/node"
	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/watcher"
)

func runUp(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("up", e)
	var (
		lo       logOptions
		nodes    int
		mqttPort int
		api      string
		dataDir  string
		zkAddrs  string
		redis    string
		session  time.Duration
	)
	lo.register(fs)
	fs.IntVar(&nodes, "nodes", 3, "broker nodes to run")
	fs.IntVar(&mqttPort, "mqtt-port", 1883, "MQTT port of the first node; the others take the next ports")
	fs.StringVar(&api, "api", "127.0.0.1:8080", "router API listen address")
	fs.StringVar(&dataDir, "data-dir", ".switchboard", "where backend data and logs go")
	fs.StringVar(&zkAddrs, "zk", "", "use this ZooKeeper ensemble instead of starting one")
	fs.StringVar(&redis, "redis", "", "use this Redis instead of starting one")
	fs.DurationVar(&session, "session-timeout", 4*time.Second, "ZooKeeper session timeout for the nodes")
	if err := parse(fs, args); err != nil {
		return err
	}
	if nodes < 1 || nodes > 64 {
		return usagef("--nodes %d: want 1 to 64", nodes)
	}
	if mqttPort < 1 || mqttPort+nodes-1 > 65535 {
		return usagef("--mqtt-port %d: out of range for %d nodes", mqttPort, nodes)
	}
	log, err := lo.logger(e.stderr)
	if err != nil {
		return err
	}
	// Check every port before starting anything, so a busy one fails cleanly.
	var lis []net.Listener
	closeAll := func() {
		for _, l := range lis {
			l.Close()
		}
	}
	for i := range nodes {
		addr := fmt.Sprintf("127.0.0.1:%d", mqttPort+i)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("MQTT port for node-%d: %w", i+1, err)
		}
		lis = append(lis, l)
	}
	apiL, err := net.Listen("tcp", api)
	if err != nil {
		closeAll()
		return fmt.Errorf("--api %s: %w", api, err)
	}
	closeAll()
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		apiL.Close()
		return fmt.Errorf("--data-dir %s: %w", dataDir, err)
	}

	if zkAddrs == "" || redis == "" {
		fmt.Fprintln(e.stderr, "starting a 3-server ZooKeeper ensemble and Redis from Debian's packages...")
		b, err := startDevBackends(ctx, filepath.Join(dataDir, "backends"))
		if err != nil {
			apiL.Close()
			return err
		}
		defer b.close()
		if zkAddrs == "" {
			zkAddrs = b.ensemble.ConnectString()
		}
		if redis == "" {
			redis = b.redis.Addr
		}
	}
	ro := redisOptions{addr: redis, prefix: "sb"}
	st, err := ro.open(ctx, log)
	if err != nil {
		apiL.Close()
		return err
	}
	defer st.Close()
	zcfg := zkcoord.Config{Servers: splitList(zkAddrs), SessionTimeout: session, Logger: log}

	// The first-run tour connects mosquitto_sub without credentials.
	authn, err := auth.New(auth.Config{AllowAnonymous: true})
	if err != nil {
		apiL.Close()
		return err
	}
	fmt.Fprintln(e.stderr, "note: anonymous MQTT clients are admitted (each may read only its own inbox) and the API needs no token: this is a development cluster")
	var running []*node.Node
	defer func() {
		for _, n := range running {
			n.Close(context.Background())
		}
	}()
	var coords []*zkcoord.Coordinator
	defer func() {
		for _, c := range coords {
			c.Close()
		}
	}()
	for i := range nodes {
		c, err := zkcoord.New(ctx, zcfg)
		if err != nil {
			apiL.Close()
			return err
		}
		coords = append(coords, c)
		cfg := node.DefaultConfig()
		cfg.ID = fmt.Sprintf("node-%d", i+1)
		cfg.MQTTAddr = fmt.Sprintf("127.0.0.1:%d", mqttPort+i)
		cfg.InternalAddr = "127.0.0.1:0"
		cfg.AdminAddr = "127.0.0.1:0"
		cfg.DataDir = dataDir
		cfg.Auth = authn
		n, err := node.Start(ctx, cfg, c, st, log)
		if err != nil {
			apiL.Close()
			return err
		}
		running = append(running, n)
	}
	rc, err := zkcoord.New(ctx, zcfg)
	if err != nil {
		apiL.Close()
		return err
	}
	coords = append(coords, rc)
	rs, err := startRouter(ctx, router.DefaultConfig(), rc, st, apiL, "router-up", nil, log)
	if err != nil {
		apiL.Close()
		return err
	}
	defer rs.close()

	mc, err := zkcoord.New(ctx, zcfg)
	if err != nil {
		return err
	}
	coords = append(coords, mc)
	mw, err := watcher.Start(ctx, mc, log)
	if err != nil {
		return err
	}
	defer mw.Close()
	mcfg := monitor.DefaultConfig()
	mcfg.ID = "monitor-up"
	mon, err := monitor.New(mcfg, mc, mw, log)
	if err != nil {
		return err
	}
	mctx, stopMonitor := context.WithCancel(context.Background())
	monDone := make(chan struct{})
	go func() { defer close(monDone); mon.Run(mctx) }()
	defer func() { stopMonitor(); <-monDone }()

	printTour(e, running, apiL.Addr().String(), zkAddrs, redis, st)
	<-ctx.Done()
	fmt.Fprintln(e.stderr, "stopping...")
	return nil
}

func printTour(e env, nodes []*node.Node, api, zk, redis string, _ store.Store) {
	w := e.stdout
	fmt.Fprintf(w, "\nSwitchboard is up: %d nodes, a router, a monitor, ZooKeeper and Redis.\n\n", len(nodes))
	for _, n := range nodes {
		m := n.Member()
		fmt.Fprintf(w, "  %-8s mqtt://%s   admin http://%s/healthz\n", m.ID, m.MQTTAddr, m.AdminAddr)
	}
	fmt.Fprintf(w, "  router   http://%s   (POST /v1/messages)\n", api)
	fmt.Fprintf(w, "  zk       %s\n  redis    %s\n\n", zk, redis)
	first := nodes[0].Member().MQTTAddr
	host, port, _ := net.SplitHostPort(first)
	fmt.Fprintf(w, "Try it:\n")
	fmt.Fprintf(w, "  mosquitto_sub -h %s -p %s -i alice -q 1 -t inbox/alice\n", host, port)
	fmt.Fprintf(w, "  switchboard send --api http://%s --to alice 'hello alice'\n\n", api)
	fmt.Fprintf(w, "Ctrl-C stops everything.\n")
}
