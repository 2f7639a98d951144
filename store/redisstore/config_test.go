package redisstore_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
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
		{"SpaceInClientName", func(c *redisstore.Config) { c.ClientName = "router one" }, []string{"ClientName", `"router one"`}},
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

// TestConnectionsCarryTheClientName: every connection of a store made with a ClientName
// shows it in CLIENT LIST, and ClientName makes a name Redis takes of any id.
func TestConnectionsCarryTheClientName(t *testing.T) {
	if got, want := redisstore.ClientName("router", "edge 1\tö"), "switchboard-router-edge_1__"; got != want {
		t.Fatalf("ClientName = %q, want %q", got, want)
	}
	if got := redisstore.ClientName("up", ""); got != "switchboard-up" {
		t.Fatalf("ClientName without an id = %q", got)
	}
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	cfg.ClientName = redisstore.ClientName("router", "named-"+strings.ToLower(t.Name()))
	s := open(t, cfg)
	ctx, cancel := testContext(t, 10*time.Second)
	defer cancel()
	// Several calls at once, so the pool holds more than one connection.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Depth(ctx, fmt.Sprint("named-", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	list, err := rawClient(t, addr).ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	named := strings.Count(list, " name="+cfg.ClientName+" ")
	if named == 0 {
		t.Fatalf("no connection named %s in CLIENT LIST:\n%s", cfg.ClientName, list)
	}
	t.Logf("%d connections named %s", named, cfg.ClientName)
}

// TestLibraryLinesGoToTheLogger: go-redis's own lines (a pool that cannot dial, while
// Redis is down) reach the store's logger, at debug, instead of stderr past the process's
// handler and its --log-format.
func TestLibraryLinesGoToTheLogger(t *testing.T) {
	ctx, cancel := testContext(t, 30*time.Second)
	defer cancel()
	r, err := backends.StartRedis(ctx, backends.RedisConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var out testenv.Buffer
	cfg := testConfig(t, r.Addr)
	cfg.Logger = slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.DialTimeout, cfg.ReadTimeout, cfg.WriteTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	cfg.DurabilityTimeout = 100 * time.Millisecond
	s := open(t, cfg)
	r.Close()
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		_, _ = s.Depth(ctx, "lib-log") // fails: each try has the pool dial
		if !strings.Contains(out.String(), "source=go-redis") {
			return errors.New("no go-redis line reached the logger")
		}
		return nil
	})
}
