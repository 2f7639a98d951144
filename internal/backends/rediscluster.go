package backends

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RedisClusterConfig says how to run a Redis Cluster on this machine.
type RedisClusterConfig struct {
	// Dir holds one directory per server (data, nodes.conf, log). Required.
	Dir string
	// Primaries is the number of primaries, among which the 16384 slots are split. Default 3.
	Primaries int
	// ReplicasPerPrimary is the number of replicas of each primary. Default 1.
	ReplicasPerPrimary int
	// NodeTimeout is cluster-node-timeout: how long a node may be unreachable before the
	// cluster counts it as failed and promotes one of its replicas. Default 2s (Redis's
	// default is 15s).
	NodeTimeout time.Duration
}

func (c *RedisClusterConfig) defaults() {
	if c.Primaries == 0 {
		c.Primaries = 3
	}
	if c.ReplicasPerPrimary == 0 {
		c.ReplicasPerPrimary = 1
	}
	if c.NodeTimeout == 0 {
		c.NodeTimeout = 2 * time.Second
	}
}

// RedisCluster is a running Redis Cluster of redis-server processes on 127.0.0.1.
type RedisCluster struct {
	cfg   RedisClusterConfig
	nodes []*Redis
}

// ClusterNode is one node as CLUSTER NODES reports it.
type ClusterNode struct {
	ID      string
	Addr    string // host:port
	Primary bool
	Slots   int // how many slots it serves (primaries)
}

// StartRedisCluster starts Primaries × (1 + ReplicasPerPrimary) servers with
// cluster-enabled yes, each with the same durability settings as StartRedis, joins them
// with `redis-cli --cluster create`, and returns once every slot is served and every
// replica is in sync with its primary.
func StartRedisCluster(ctx context.Context, cfg RedisClusterConfig) (*RedisCluster, error) {
	cfg.defaults()
	if cfg.Dir == "" {
		return nil, errors.New("redis cluster: Dir is required")
	}
	dir, err := absDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("redis cluster: %w", err)
	}
	cfg.Dir = dir
	if err := EnsureInstalled(ctx); err != nil {
		return nil, err
	}
	n := cfg.Primaries * (1 + cfg.ReplicasPerPrimary)
	// Two ports a node: its clients', and the cluster bus (set explicitly: Redis's default,
	// the client port + 10000, may be taken or out of range).
	ports, err := FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &RedisCluster{cfg: cfg}
	for i := range n {
		r, err := StartRedis(ctx, RedisConfig{
			Dir:  filepath.Join(cfg.Dir, fmt.Sprintf("node%d", i+1)),
			Port: ports[2*i],
			Args: []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
				"--cluster-port", strconv.Itoa(ports[2*i+1]),
				"--cluster-node-timeout", strconv.FormatInt(cfg.NodeTimeout.Milliseconds(), 10),
				// A cluster with a slot not served refuses every command by default; the
				// tests want to see exactly which keys are unreachable.
				"--cluster-require-full-coverage", "no",
			},
		})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("redis cluster: %w", err)
		}
		c.nodes = append(c.nodes, r)
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(cfg.ReplicasPerPrimary), "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis cluster: redis-cli %s: %w: %s", strings.Join(args, " "), err, lastLines(out, 5))
	}
	if err := c.WaitHealthy(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Nodes returns every server, in start order.
func (c *RedisCluster) Nodes() []*Redis { return c.nodes }

// Addrs returns every server's address, as --redis-cluster takes them.
func (c *RedisCluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, r := range c.nodes {
		addrs[i] = r.Addr
	}
	return addrs
}

// WaitHealthy waits until every running node reports cluster_state:ok, knows every node
// and agrees with the others on which primary serves which slots, and every replica's
// link to its primary is up.
func (c *RedisCluster) WaitHealthy(ctx context.Context) error {
	return waitFor(ctx, "redis cluster healthy", func(ctx context.Context) (bool, error) {
		views := map[string]string{} // node -> its view of the slot map
		for _, r := range c.nodes {
			if !r.Running() {
				continue
			}
			v, err := redisDo(ctx, r.Addr, "cluster", "nodes")
			if err != nil {
				return false, err
			}
			text, _ := v.(string)
			views[r.Addr] = slotMap(text)
		}
		for addr, v := range views {
			for other, w := range views {
				if v != w {
					return false, fmt.Errorf("%s and %s disagree about the slots: %q, %q", addr, other, v, w)
				}
			}
		}
		for _, r := range c.nodes {
			if !r.Running() {
				continue
			}
			ci, err := redisInfo(ctx, r.Addr, "cluster info")
			if err != nil {
				return false, err
			}
			if ci["cluster_state"] != "ok" || ci["cluster_known_nodes"] != strconv.Itoa(len(c.nodes)) {
				return false, fmt.Errorf("%s: cluster_state %s, %s nodes known", r.Addr, ci["cluster_state"], ci["cluster_known_nodes"])
			}
			rep, err := redisInfo(ctx, r.Addr, "replication")
			if err != nil {
				return false, err
			}
			if rep["role"] == "slave" && rep["master_link_status"] != "up" {
				return false, fmt.Errorf("replica %s: link to its primary %s", r.Addr, rep["master_link_status"])
			}
		}
		return true, nil
	})
}

// ClusterNodes reads CLUSTER NODES from a running node.
func (c *RedisCluster) ClusterNodes(ctx context.Context) ([]ClusterNode, error) {
	var last error
	for _, r := range c.nodes {
		if !r.Running() {
			continue
		}
		v, err := redisDo(ctx, r.Addr, "cluster", "nodes")
		if err != nil {
			last = err
			continue
		}
		text, _ := v.(string)
		return parseClusterNodes(text), nil
	}
	return nil, fmt.Errorf("redis cluster: no node answered CLUSTER NODES: %v", last)
}

// slotMap is the part of CLUSTER NODES every node must agree on: each primary's id and the
// slots it serves, sorted.
func slotMap(text string) string {
	var lines []string
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "master") {
			continue
		}
		var slots []string
		for _, s := range f[8:] {
			if !strings.HasPrefix(s, "[") {
				slots = append(slots, s)
			}
		}
		lines = append(lines, f[0]+" "+strings.Join(slots, ","))
	}
	slices.Sort(lines)
	return strings.Join(lines, "; ")
}

// parseClusterNodes reads CLUSTER NODES: "<id> <ip:port@bus> <flags> <master> <ping> <pong>
// <epoch> <link> <slot> <slot>...", a slot being "n" or "a-b" (or an import/migrate
// marker in brackets, which serves nothing yet).
func parseClusterNodes(text string) []ClusterNode {
	var nodes []ClusterNode
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := ClusterNode{ID: f[0], Addr: addr, Primary: strings.Contains(f[2], "master")}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue
			}
			a, b, rng := strings.Cut(s, "-")
			lo, err1 := strconv.Atoi(a)
			hi := lo
			var err2 error
			if rng {
				hi, err2 = strconv.Atoi(b)
			}
			if err1 == nil && err2 == nil {
				n.Slots += hi - lo + 1
			}
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// Reshard moves slots slots from the primary with id from to the one with id to, with
// `redis-cli --cluster reshard`, which migrates their keys in batches of pipeline keys
// (MIGRATE) while clients go on: meanwhile they are answered ASK (a key already moved) and
// TRYAGAIN (a multi-key command whose keys are split between the two), and MOVED once a
// slot has moved. It returns when the move is done and every node agrees on it.
func (c *RedisCluster) Reshard(ctx context.Context, from, to string, slots, pipeline int) error {
	if pipeline <= 0 {
		pipeline = 10
	}
	args := []string{"--cluster", "reshard", c.nodes[0].Addr, "--cluster-from", from, "--cluster-to", to,
		"--cluster-slots", strconv.Itoa(slots), "--cluster-pipeline", strconv.Itoa(pipeline), "--cluster-yes"}
	out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
	logPath := filepath.Join(c.cfg.Dir, "reshard.log")
	_ = os.WriteFile(logPath, out, 0o644)
	if err != nil {
		return fmt.Errorf("redis-cli %s: %w: %s", strings.Join(args, " "), err, lastLines(out, 5))
	}
	// redis-cli returns once it has set the slots' new owner on the two nodes; the others
	// learn it by gossip.
	return c.WaitHealthy(ctx)
}

// Close stops every server. The data directories stay (they are under Dir, which the
// caller owns).
func (c *RedisCluster) Close() error {
	for _, r := range c.nodes {
		_ = r.Kill()
	}
	return nil
}

// lastLines is the end of a command's output, for an error message.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
