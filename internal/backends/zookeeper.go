package backends

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-mqtt/switchboard/zkstat"
)

// EnsembleConfig says how to run a ZooKeeper ensemble on this machine.
type EnsembleConfig struct {
	// Dir holds one directory per server (data, myid, zoo.cfg, log). Required.
	Dir string
	// Size is the number of servers. Default 3.
	Size int
	// TickTime is ZooKeeper's basic time unit; session timeouts are clamped by the server to
	// 2-20 ticks. Default 250ms, so tests can use session timeouts from 0.5s to 5s.
	TickTime time.Duration
	// HeapMB caps each server's Java heap. Default 128.
	HeapMB int
}

func (c *EnsembleConfig) defaults() {
	if c.Size == 0 {
		c.Size = 3
	}
	if c.TickTime == 0 {
		c.TickTime = 250 * time.Millisecond
	}
	if c.HeapMB == 0 {
		c.HeapMB = 128
	}
}

// ZKServer is one server of an Ensemble.
type ZKServer struct {
	ID         int    // myid, 1..Size
	ClientAddr string // 127.0.0.1:port clients connect to
	proc       *process
}

// Ensemble is a running ZooKeeper ensemble of real server processes on 127.0.0.1.
type Ensemble struct {
	cfg     EnsembleConfig
	servers []*ZKServer
}

// StartEnsemble writes a configuration per server, starts them all and returns once the
// ensemble has elected a leader and every server serves.
func StartEnsemble(ctx context.Context, cfg EnsembleConfig) (*Ensemble, error) {
	cfg.defaults()
	if cfg.Dir == "" {
		return nil, errors.New("ensemble: Dir is required")
	}
	if err := EnsureInstalled(ctx); err != nil {
		return nil, err
	}
	ports, err := FreePorts(3 * cfg.Size)
	if err != nil {
		return nil, err
	}
	e, err := newEnsemble(cfg, ports)
	if err != nil {
		return nil, err
	}
	for _, s := range e.servers {
		if err := s.proc.start(); err != nil {
			e.Close()
			return nil, err
		}
	}
	if err := e.WaitServing(ctx); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// newEnsemble writes every server's directory, myid and zoo.cfg under cfg.Dir, made
// absolute first, with three ports a server from ports (client, quorum, election), and
// returns the ensemble, not started. ZooKeeper reads zoo.cfg and dataDir relative to its
// working directory, which is the server's own directory, so every path it is given is
// absolute.
func newEnsemble(cfg EnsembleConfig, ports []int) (*Ensemble, error) {
	dirAbs, err := absDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("ensemble: %w", err)
	}
	cfg.Dir = dirAbs
	var serverLines strings.Builder
	for i := range cfg.Size {
		// server.N=host:quorumPort:electionPort;clientHost:clientPort
		fmt.Fprintf(&serverLines, "server.%d=127.0.0.1:%d:%d\n", i+1, ports[3*i+1], ports[3*i+2])
	}
	e := &Ensemble{cfg: cfg}
	for i := range cfg.Size {
		id := i + 1
		dir := filepath.Join(cfg.Dir, fmt.Sprintf("zk%d", id))
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
			return nil, fmt.Errorf("ensemble: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "data", "myid"), fmt.Appendf(nil, "%d\n", id), 0o644); err != nil {
			return nil, fmt.Errorf("ensemble: %w", err)
		}
		tick := cfg.TickTime.Milliseconds()
		conf := fmt.Sprintf(`# written by switchboard's backends package
tickTime=%d
initLimit=20
syncLimit=10
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr,stat,ruok,mntr,conf,cons
standaloneEnabled=false
reconfigEnabled=false
%s`, tick, filepath.Join(dir, "data"), ports[3*i], serverLines.String())
		cfgPath := filepath.Join(dir, "zoo.cfg")
		if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
			return nil, fmt.Errorf("ensemble: %w", err)
		}
		s := &ZKServer{
			ID:         id,
			ClientAddr: fmt.Sprintf("127.0.0.1:%d", ports[3*i]),
			proc: &process{
				name: fmt.Sprintf("zookeeper %d", id),
				argv: []string{"java",
					fmt.Sprintf("-Xmx%dm", cfg.HeapMB), "-Xms16m", "-XX:+UseSerialGC",
					"-XX:TieredStopAtLevel=1", "-Xss512k",
					"-Dzookeeper.admin.enableServer=false",
					"-Dzookeeper.jmx.log4j.disable=true",
					"-Dorg.slf4j.simpleLogger.showDateTime=true",
					"-cp", ZooKeeperJar + ":/usr/share/java/slf4j-simple.jar",
					"org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgPath},
				dir:     dir,
				logPath: filepath.Join(dir, "zookeeper.log"),
			},
		}
		e.servers = append(e.servers, s)
	}
	return e, nil
}

// Servers returns the servers in myid order.
func (e *Ensemble) Servers() []*ZKServer { return e.servers }

// Addrs returns every server's client address.
func (e *Ensemble) Addrs() []string {
	addrs := make([]string, len(e.servers))
	for i, s := range e.servers {
		addrs[i] = s.ClientAddr
	}
	return addrs
}

// ConnectString is the comma-separated client address list, as --zk takes it.
func (e *Ensemble) ConnectString() string { return strings.Join(e.Addrs(), ",") }

// TickTime is the ensemble's tick.
func (e *Ensemble) TickTime() time.Duration { return e.cfg.TickTime }

// WaitServing waits until every running server is in a serving quorum with one leader.
func (e *Ensemble) WaitServing(ctx context.Context) error {
	return e.wait(ctx, func(st zkstat.Ensemble, running []string) bool {
		if st.Leader == "" {
			return false
		}
		return st.Serving == len(running)
	})
}

// WaitQuorum waits until a majority of the ensemble serves with a leader.
func (e *Ensemble) WaitQuorum(ctx context.Context) error {
	return e.wait(ctx, func(st zkstat.Ensemble, _ []string) bool { return st.Quorum })
}

func (e *Ensemble) wait(ctx context.Context, ok func(st zkstat.Ensemble, running []string) bool) error {
	var last zkstat.Ensemble
	for {
		var running []string
		for _, s := range e.servers {
			if s.proc.crashed() {
				// started by us but exited on its own: no point waiting
				return fmt.Errorf("zookeeper %d exited; see %s", s.ID, s.proc.logPath)
			}
			if s.proc.running() {
				running = append(running, s.ClientAddr)
			}
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		st := zkstat.Query(qctx, e.Addrs())
		cancel()
		st.Quorum = st.Leader != "" && st.Serving > len(e.servers)/2
		last = st
		if ok(st, running) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ensemble not serving (%d of %d serving, leader %q): %w",
				last.Serving, len(e.servers), last.Leader, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Leader returns the server that currently reports Mode: leader.
func (e *Ensemble) Leader(ctx context.Context) (*ZKServer, error) {
	st := zkstat.Query(ctx, e.Addrs())
	for _, s := range e.servers {
		if s.ClientAddr == st.Leader {
			return s, nil
		}
	}
	return nil, errors.New("no server reports Mode: leader")
}

// Close stops every server and waits for them to exit. The data directories stay (they are
// under Dir, which the caller owns).
func (e *Ensemble) Close() error {
	for _, s := range e.servers {
		_ = s.proc.stop(true, 5*time.Second)
	}
	return nil
}

// Stop stops the server gracefully (SIGTERM) and waits for it to exit.
func (s *ZKServer) Stop() error { return s.proc.stop(false, 10*time.Second) }

// Kill stops the server with SIGKILL and waits for it to exit.
func (s *ZKServer) Kill() error { return s.proc.stop(true, 10*time.Second) }

// Start starts a stopped server again with its configuration and data.
func (s *ZKServer) Start() error { return s.proc.start() }

// Pause freezes the server (SIGSTOP): its connections stay open but nothing answers.
func (s *ZKServer) Pause() error { return s.proc.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *ZKServer) Resume() error { return s.proc.signal(syscall.SIGCONT) }

// Running reports whether the server process is up.
func (s *ZKServer) Running() bool { return s.proc.running() }

// LogPath is the server's log file.
func (s *ZKServer) LogPath() string { return s.proc.logPath }
