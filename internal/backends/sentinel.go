package backends

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// SentinelConfig says how to run a Redis primary with replicas, watched by Sentinels.
type SentinelConfig struct {
	// Dir holds one directory per server and per Sentinel. Required.
	Dir string
	// MasterName is the name the Sentinels monitor the primary under. Default "mymaster".
	MasterName string
	// Replicas is the number of replicas. Default 2.
	Replicas int
	// Sentinels is the number of Sentinels; a majority of them must agree to fail over.
	// Default 3.
	Sentinels int
	// MinReplicasToWrite is every server's min-replicas-to-write: a primary that has heard
	// from fewer replicas within MinReplicasMaxLag refuses writes (NOREPLICAS) instead of
	// taking writes a failover would lose. Default 1; -1 turns it off.
	MinReplicasToWrite int
	// MinReplicasMaxLag is every server's min-replicas-max-lag. Default 2s.
	MinReplicasMaxLag time.Duration
	// DownAfter is the Sentinels' down-after-milliseconds: how long the primary may not
	// answer before they count it as down. Default 1s.
	DownAfter time.Duration
	// FailoverTimeout is the Sentinels' failover-timeout. Default 5s.
	FailoverTimeout time.Duration
}

func (c *SentinelConfig) defaults() {
	if c.MasterName == "" {
		c.MasterName = "mymaster"
	}
	if c.Replicas == 0 {
		c.Replicas = 2
	}
	if c.Sentinels == 0 {
		c.Sentinels = 3
	}
	if c.MinReplicasToWrite == 0 {
		c.MinReplicasToWrite = 1
	}
	if c.MinReplicasToWrite < 0 {
		c.MinReplicasToWrite = 0
	}
	if c.MinReplicasMaxLag == 0 {
		c.MinReplicasMaxLag = 2 * time.Second
	}
	if c.DownAfter == 0 {
		c.DownAfter = time.Second
	}
	if c.FailoverTimeout == 0 {
		c.FailoverTimeout = 5 * time.Second
	}
}

// SentinelSet is a running primary, its replicas and the Sentinels that watch them, all on
// 127.0.0.1.
type SentinelSet struct {
	cfg       SentinelConfig
	servers   []*Redis // servers[0] started as the primary
	sentinels []*Sentinel
}

// Sentinel is one redis-sentinel process.
type Sentinel struct {
	Addr string
	proc *process
}

// StartSentinelSet starts a primary and its replicas (each with StartRedis's durability
// settings and min-replicas-to-write), then the Sentinels, and returns once every replica
// is in sync and every Sentinel knows the primary, every replica and every other Sentinel,
// so that a failover can start as soon as the primary fails.
func StartSentinelSet(ctx context.Context, cfg SentinelConfig) (*SentinelSet, error) {
	cfg.defaults()
	if cfg.Dir == "" {
		return nil, errors.New("sentinel set: Dir is required")
	}
	dir, err := absDir(cfg.Dir) // sentinel.conf's dir and the Sentinels' argv are read from their own dirs
	if err != nil {
		return nil, fmt.Errorf("sentinel set: %w", err)
	}
	cfg.Dir = dir
	if err := EnsureInstalled(ctx); err != nil {
		return nil, err
	}
	ports, err := FreePorts(1 + cfg.Replicas + cfg.Sentinels)
	if err != nil {
		return nil, err
	}
	s := &SentinelSet{cfg: cfg}
	primary := fmt.Sprintf("127.0.0.1:%d", ports[0])
	for i := range 1 + cfg.Replicas {
		args := []string{
			"--min-replicas-to-write", strconv.Itoa(cfg.MinReplicasToWrite),
			"--min-replicas-max-lag", strconv.Itoa(max(1, int(cfg.MinReplicasMaxLag.Seconds()))),
		}
		if i > 0 {
			args = append(args, "--replicaof", fmt.Sprintf("127.0.0.1 %d", ports[0]))
		}
		r, err := StartRedis(ctx, RedisConfig{Dir: filepath.Join(s.cfg.Dir, fmt.Sprintf("redis%d", i+1)), Port: ports[i], Args: args})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("sentinel set: %w", err)
		}
		s.servers = append(s.servers, r)
	}
	if err := waitFor(ctx, "replicas in sync", func(ctx context.Context) (bool, error) {
		rep, err := redisInfo(ctx, primary, "replication")
		if err != nil {
			return false, err
		}
		return rep["connected_slaves"] == strconv.Itoa(cfg.Replicas), fmt.Errorf("%s replicas connected", rep["connected_slaves"])
	}); err != nil {
		s.Close()
		return nil, err
	}
	for i := range cfg.Sentinels {
		port := ports[1+cfg.Replicas+i]
		dir := filepath.Join(cfg.Dir, fmt.Sprintf("sentinel%d", i+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			s.Close()
			return nil, fmt.Errorf("sentinel set: %w", err)
		}
		// Sentinel rewrites its configuration file as it learns the topology.
		conf := fmt.Sprintf(`# written by switchboard's backends package
bind 127.0.0.1
port %d
daemonize no
dir %s
sentinel resolve-hostnames no
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 1
`, port, dir, cfg.MasterName, ports[0], cfg.Sentinels/2+1,
			cfg.MasterName, cfg.DownAfter.Milliseconds(), cfg.MasterName, cfg.FailoverTimeout.Milliseconds(), cfg.MasterName)
		confPath := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			s.Close()
			return nil, fmt.Errorf("sentinel set: %w", err)
		}
		sn := &Sentinel{
			Addr: fmt.Sprintf("127.0.0.1:%d", port),
			proc: &process{name: fmt.Sprintf("sentinel %d", i+1), argv: []string{"redis-sentinel", confPath},
				dir: dir, logPath: filepath.Join(dir, "sentinel.log")},
		}
		if err := sn.proc.start(); err != nil {
			s.Close()
			return nil, err
		}
		s.sentinels = append(s.sentinels, sn)
	}
	if err := s.waitSentinels(ctx, primary); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// waitSentinels waits until every Sentinel names primary, knows every replica and every
// other Sentinel (they find each other through the primary, every two seconds).
func (s *SentinelSet) waitSentinels(ctx context.Context, primary string) error {
	return waitFor(ctx, "sentinels agree", func(ctx context.Context) (bool, error) {
		for _, sn := range s.sentinels {
			if sn.proc.crashed() {
				return false, fmt.Errorf("%s exited; see %s", sn.proc.name, sn.proc.logPath)
			}
			got, err := s.masterAddr(ctx, sn.Addr)
			if err != nil {
				return false, err
			}
			if got != primary {
				return false, fmt.Errorf("%s names %s, want %s", sn.Addr, got, primary)
			}
			v, err := redisDo(ctx, sn.Addr, "sentinel", "master", s.cfg.MasterName)
			if err != nil {
				return false, err
			}
			f := pairs(v)
			if f["num-slaves"] != strconv.Itoa(s.cfg.Replicas) || f["num-other-sentinels"] != strconv.Itoa(len(s.sentinels)-1) {
				return false, fmt.Errorf("%s knows %s replicas and %s other sentinels", sn.Addr, f["num-slaves"], f["num-other-sentinels"])
			}
		}
		return true, nil
	})
}

// pairs reads a flat array of field, value, field, value... (SENTINEL MASTER's reply).
func pairs(v any) map[string]string {
	out := map[string]string{}
	list, _ := v.([]any)
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		val, _ := list[i+1].(string)
		out[k] = val
	}
	return out
}

// masterAddr asks the Sentinel at addr where the primary is.
func (s *SentinelSet) masterAddr(ctx context.Context, addr string) (string, error) {
	v, err := redisDo(ctx, addr, "sentinel", "get-master-addr-by-name", s.cfg.MasterName)
	if err != nil {
		return "", err
	}
	hp, _ := v.([]any)
	if len(hp) != 2 {
		return "", fmt.Errorf("%s: no address for %s: %v", addr, s.cfg.MasterName, v)
	}
	host, _ := hp[0].(string)
	port, _ := hp[1].(string)
	return host + ":" + port, nil
}

// MasterName is the name the Sentinels know the primary by.
func (s *SentinelSet) MasterName() string { return s.cfg.MasterName }

// SentinelAddrs are the Sentinels' addresses, as --redis-sentinels takes them.
func (s *SentinelSet) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		addrs[i] = sn.Addr
	}
	return addrs
}

// Servers returns the Redis servers; the first one started as the primary.
func (s *SentinelSet) Servers() []*Redis { return s.servers }

// Primary returns the server a majority of the Sentinels name as the primary.
func (s *SentinelSet) Primary(ctx context.Context) (*Redis, error) {
	votes := map[string]int{}
	for _, sn := range s.sentinels {
		if addr, err := s.masterAddr(ctx, sn.Addr); err == nil {
			votes[addr]++
		}
	}
	for addr, n := range votes {
		if n > len(s.sentinels)/2 {
			for _, r := range s.servers {
				if r.Addr == addr {
					return r, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no primary named by a majority of the sentinels: %v", votes)
}

// WaitFailover waits until a majority of the Sentinels name a primary other than old, that
// server reports role:master, and it has at least MinReplicasToWrite replicas connected
// (until then it refuses writes), and returns it.
func (s *SentinelSet) WaitFailover(ctx context.Context, old *Redis) (*Redis, error) {
	var primary *Redis
	err := waitFor(ctx, "sentinel failover", func(ctx context.Context) (bool, error) {
		p, err := s.Primary(ctx)
		if err != nil {
			return false, err
		}
		if p == old {
			return false, fmt.Errorf("the sentinels still name %s", old.Addr)
		}
		rep, err := redisInfo(ctx, p.Addr, "replication")
		if err != nil {
			return false, err
		}
		n, _ := strconv.Atoi(rep["connected_slaves"])
		if rep["role"] != "master" || n < s.cfg.MinReplicasToWrite {
			return false, fmt.Errorf("%s is %s with %d replicas", p.Addr, rep["role"], n)
		}
		primary = p
		return true, nil
	})
	return primary, err
}

// Close stops the Sentinels and the servers. The data directories stay.
func (s *SentinelSet) Close() error {
	for _, sn := range s.sentinels {
		_ = sn.proc.stop(true, 5*time.Second)
	}
	for _, r := range s.servers {
		_ = r.Kill()
	}
	return nil
}
