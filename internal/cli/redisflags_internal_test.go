package cli

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store/redisstore"
)

// TestRedisClusterAndDurabilityFlags: --redis-cluster selects Cluster mode, and
// --redis-durability and its timeout reach the store's configuration; a bad durability is
// refused naming it, and the default leaves the choice to the store.
func TestRedisClusterAndDurabilityFlags(t *testing.T) {
	parseRedis := func(args ...string) (redisstore.Config, error) {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var o redisOptions
		o.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return o.config(nil)
	}
	cfg, err := parseRedis("--redis-cluster", "10.0.0.1:7000,10.0.0.2:7000", "--redis-durability", "replica",
		"--redis-durability-timeout", "250ms")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.ClusterAddrs, ",") != "10.0.0.1:7000,10.0.0.2:7000" || cfg.Addr != "" ||
		cfg.Durability != redisstore.DurabilityReplica || cfg.DurabilityTimeout != 250*time.Millisecond {
		t.Fatalf("config %+v", cfg)
	}
	if cfg, err := parseRedis("--redis", "127.0.0.1:6379"); err != nil || cfg.Durability != redisstore.DurabilityAuto {
		t.Fatalf("default durability %q, %v; want the store to choose", cfg.Durability, err)
	}
	if _, err := parseRedis("--redis", "127.0.0.1:6379", "--redis-durability", "fsync"); err == nil || !strings.Contains(err.Error(), "Durability") {
		t.Fatalf("--redis-durability fsync: %v, want an error naming Durability", err)
	}
	if _, err := parseRedis("--redis", "127.0.0.1:6379", "--redis-cluster", "10.0.0.1:7000"); err == nil {
		t.Fatal("--redis with --redis-cluster accepted")
	}
	if _, err := parseRedis(); err == nil || !strings.Contains(err.Error(), "--redis-cluster") {
		t.Fatalf("no Redis flag: %v, want one naming the choices", err)
	}
}
