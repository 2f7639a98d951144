package redisstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store/redisstore"
)

func TestConfigValidate(t *testing.T) {
	if err := redisstore.DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	sentinel := redisstore.Config{SentinelAddrs: []string{"10.0.0.1:26379"}, MasterName: "mymaster"}
	if err := sentinel.Validate(); err != nil {
		t.Fatalf("sentinel config: %v", err)
	}
	cluster := redisstore.Config{ClusterAddrs: []string{"10.0.0.1:7000", "10.0.0.2:7000"}, Durability: redisstore.DurabilityReplica}
	if err := cluster.Validate(); err != nil {
		t.Fatalf("cluster config: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*redisstore.Config)
		want []string // substrings of the error: the field and the bad value
	}{
		{"NoAddr", func(c *redisstore.Config) { c.Addr = "" }, []string{"Addr"}},
		{"BadAddr", func(c *redisstore.Config) { c.Addr = "localhost" }, []string{"Addr", `"localhost"`}},
		{"Both", func(c *redisstore.Config) { c.SentinelAddrs = []string{"h:1"}; c.MasterName = "m" }, []string{"Addr", "SentinelAddrs"}},
		{"BadSentinel", func(c *redisstore.Config) {
			c.Addr, c.SentinelAddrs, c.MasterName = "", []string{"h:1", "nope"}, "m"
		}, []string{"SentinelAddrs[1]", `"nope"`}},
		{"NoMaster", func(c *redisstore.Config) { c.Addr, c.SentinelAddrs = "", []string{"h:1"} }, []string{"MasterName"}},
		{"MasterWithoutSentinels", func(c *redisstore.Config) { c.MasterName = "m" }, []string{"MasterName", `"m"`}},
		{"NegativeDB", func(c *redisstore.Config) { c.DB = -1 }, []string{"DB", "-1"}},
		{"BracePrefix", func(c *redisstore.Config) { c.Prefix = "sb{x}" }, []string{"Prefix", `"sb{x}"`}},
		{"NegativeDial", func(c *redisstore.Config) { c.DialTimeout = -time.Second }, []string{"DialTimeout", "-1s"}},
		{"NegativeRead", func(c *redisstore.Config) { c.ReadTimeout = -time.Second }, []string{"ReadTimeout", "-1s"}},
		{"NegativeWrite", func(c *redisstore.Config) { c.WriteTimeout = -time.Second }, []string{"WriteTimeout", "-1s"}},
		{"NegativePool", func(c *redisstore.Config) { c.PoolSize = -2 }, []string{"PoolSize", "-2"}},
		{"AddrAndCluster", func(c *redisstore.Config) { c.ClusterAddrs = []string{"h:1"} }, []string{"Addr", "ClusterAddrs"}},
		{"BadCluster", func(c *redisstore.Config) { c.Addr, c.ClusterAddrs = "", []string{"h:1", "nope"} }, []string{"ClusterAddrs[1]", `"nope"`}},
		{"ClusterDB", func(c *redisstore.Config) { c.Addr, c.ClusterAddrs, c.DB = "", []string{"h:1"}, 2 }, []string{"DB", "2"}},
		{"BadDurability", func(c *redisstore.Config) { c.Durability = "always" }, []string{"Durability", `"always"`}},
		{"NegativeDurabilityTimeout", func(c *redisstore.Config) { c.DurabilityTimeout = -time.Second }, []string{"DurabilityTimeout", "-1s"}},
		{"DurabilityTimeoutPastRead", func(c *redisstore.Config) { c.DurabilityTimeout = c.ReadTimeout }, []string{"DurabilityTimeout", "ReadTimeout"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := redisstore.DefaultConfig()
			c.edit(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted a bad config")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
			if _, nerr := redisstore.New(t.Context(), cfg); nerr == nil || nerr.Error() != err.Error() {
				t.Errorf("New = %v, want the Validate error", nerr)
			}
		})
	}
}

func TestZeroFieldsTakeDefaults(t *testing.T) {
	cfg := redisstore.Config{Addr: shared.Redis(t).Addr}
	s := open(t, cfg)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}
