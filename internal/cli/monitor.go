package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"time"

	"github.com/switchboard-mqtt/switchboard/store/redisstore"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/monitor"
	"github.com/switchboard-mqtt/switchboard/watcher"
)

func runMonitor(ctx context.Context, e env, args []string) error {
	fs := newRoleFlagSet("monitor", e)
	cfg := monitor.DefaultConfig()
	var (
		lo        logOptions
		zo        coordOptions
		ro        redisOptions
		admin     string
		advertise string
	)
	lo.register(fs)
	zo.register(fs)
	ro.register(fs)
	fs.StringVar(&admin, "admin", "127.0.0.1:9884", "HTTP address for /healthz, /metrics and /v1/state")
	fs.StringVar(&advertise, "advertise-admin", "",
		"the --admin address as routers dial it, published with this monitor's candidacy so their dashboards show its probes (default: the bound --admin address)")
	fs.StringVar(&cfg.ID, "id", cfg.ID, "this monitor's name (unique among monitors)")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "time between probe rounds")
	fs.DurationVar(&cfg.ProbeTimeout, "probe-timeout", cfg.ProbeTimeout, "a node's probes slower than this fail")
	fs.IntVar(&cfg.FailAfter, "fail-after", cfg.FailAfter, "consecutive failed rounds before a node is quarantined")
	fs.DurationVar(&cfg.SlowLatency, "slow-latency", cfg.SlowLatency, "end-to-end probe latency above which (and far above its peers) a node is slow")
	fs.IntVar(&cfg.SlowAfter, "slow-after", cfg.SlowAfter, "consecutive slow or erroring rounds before a node is quarantined")
	fs.IntVar(&cfg.MaxQuarantined, "max-quarantined", cfg.MaxQuarantined, "most nodes quarantined at once")
	fs.IntVar(&cfg.MinHealthy, "min-healthy", cfg.MinHealthy, "never leave fewer healthy live nodes than this")
	fs.StringVar(&cfg.ProbeUsername, "probe-username", "", "username probe clients connect with (when nodes require credentials)")
	secretVar(fs, &cfg.ProbePassword, "probe-password", "password (or JWT) for probe clients")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.ZooKeeper = splitList(zo.servers) // its servers' srvr answers are exported at /metrics
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	log, err := lo.logger(e.stderr)
	if err != nil {
		return err
	}
	warnSecrets(fs, log)
	if err := zo.validate(); err != nil {
		return err
	}
	if ro.given() {
		ro.clientName = redisstore.ClientName("monitor", cfg.ID)
		if _, err := ro.config(log); err != nil {
			return err
		}
	}
	if err := e.validated(fs); err != nil {
		return err
	}
	c, err := zo.open(ctx, log)
	if err != nil {
		return err
	}
	defer c.Close()
	l, err := net.Listen("tcp", admin)
	if err != nil {
		return fmt.Errorf("--admin %s: %w", admin, err)
	}
	cfg.AdminAddr = advertise // empty: the bound address
	m, err := monitor.Start(ctx, cfg, monitor.Deps{Coord: c, Admin: l, Logger: log})
	if err != nil {
		l.Close()
		return err
	}
	defer m.Close() // stopped before the coordinator closes
	if ro.addr != "" || ro.sentinels != "" {
		// With a store, the monitor also stands for the reaper election.
		st, err := ro.open(ctx, log)
		if err != nil {
			return err
		}
		defer st.Close()
		reaper, err := watcher.StartReaper(ctx, watcher.ReaperConfig{Candidate: cfg.ID}, watcher.ReaperDeps{Coord: c, Store: st, Logger: log})
		if err != nil {
			return err
		}
		defer reaper.Close() // before the store and the coordinator close: defers run last first
	}
	log.Info("monitor started", "admin", l.Addr().String())
	<-ctx.Done()
	return nil
}

func operator() string {
	who := "operator"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	host, _ := os.Hostname()
	return who + "@" + host
}

func runQuarantine(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("quarantine", e)
	var (
		zo     coordOptions
		reason string
	)
	zo.register(fs)
	fs.StringVar(&reason, "reason", "", "why (required; shown in status and the node's logs)")
	var wait time.Duration
	fs.DurationVar(&wait, "wait", 0, "then wait this long at most for the node to leave the live set and move its clients off, "+
		"with progress on a terminal (0: return once the mark is set)")
	if err := parse(fs, reorderFlags(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("usage: switchboard quarantine NODE --reason \"...\" --zk ...")
	}
	if reason == "" {
		return usagef("--reason is required")
	}
	warnSecrets(fs, stderrLogger(e))
	node := fs.Arg(0)
	if err := coord.ValidateID(node); err != nil {
		return usageError{err}
	}
	c, err := zo.openDiscovered(ctx, fs, e)
	if err != nil {
		return err
	}
	defer c.Close()
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	q := coord.Quarantine{Node: node, Reason: reason, At: time.Now().UTC(), By: operator(),
		Evidence: []byte(`{"manual":true}`)}
	if err := c.SetQuarantine(qctx, q, nil); err != nil {
		return err
	}
	members, err := c.Members(qctx)
	admin := ""
	if err == nil {
		found := false
		for _, m := range members {
			if m.ID == node {
				found, admin = true, m.AdminAddr
			}
		}
		if !found {
			fmt.Fprintf(e.stderr, "note: %s is not in the live set; the mark stands and keeps it out when it starts\n", node)
		}
	}
	fmt.Fprintf(e.stdout, "quarantined %s: %s\n", node, reason)
	if wait > 0 {
		return waitDrained(ctx, e, c, node, admin, wait)
	}
	return nil
}

func runRelease(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("release", e)
	var zo coordOptions
	zo.register(fs)
	var wait time.Duration
	fs.DurationVar(&wait, "wait", 0, "then wait this long at most for the node to register again, with progress on a terminal (0: return once the mark is gone)")
	if err := parse(fs, reorderFlags(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("usage: switchboard release NODE --zk ...")
	}
	warnSecrets(fs, stderrLogger(e))
	node := fs.Arg(0)
	if err := coord.ValidateID(node); err != nil {
		return usageError{err}
	}
	c, err := zo.openDiscovered(ctx, fs, e)
	if err != nil {
		return err
	}
	defer c.Close()
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Release(qctx, node); err != nil {
		if errors.Is(err, coord.ErrNotFound) {
			return fmt.Errorf("%s is not quarantined", node)
		}
		return err
	}
	fmt.Fprintf(e.stdout, "released %s\n", node)
	if wait > 0 {
		return waitRejoined(ctx, e, c, node, wait)
	}
	return nil
}
