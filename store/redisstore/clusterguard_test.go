package redisstore_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
)

// TestDeadPrimaryFailsOnlyItsOwnSlots: with one primary of a Redis Cluster frozen
// (SIGSTOP; the cluster's node timeout is long, so no failover happens meanwhile), calls
// for clients whose slots that primary serves fail — after a few time-outs, at once — and
// calls for every other client keep succeeding. One outage guard over the whole cluster
// would count the frozen node's time-outs, arriving together, as Redis being out of reach
// and fail the healthy nodes' calls too.
func TestDeadPrimaryFailsOnlyItsOwnSlots(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := backends.StartRedisCluster(ctx, backends.RedisClusterConfig{
		Dir: filepath.Join(dir, "cluster"), NodeTimeout: time.Minute,
	})
	if err != nil {
		t.Fatalf("start Redis Cluster: %v", err)
	}
	defer c.Close()
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer rc.Close()

	cfg := clusterConfig(t, c)
	cfg.Durability = redisstore.DurabilityNone
	cfg.ReadTimeout = 200 * time.Millisecond
	cfg.WriteTimeout = 200 * time.Millisecond
	cfg.DurabilityTimeout = 100 * time.Millisecond
	s := open(t, cfg)

	// Sort clients by the primary that serves their hash tag.
	owner := map[string][]string{}
	for i := range 200 {
		id := fmt.Sprint("g", i)
		m, err := rc.MasterForKey(ctx, "{c:"+base64.RawURLEncoding.EncodeToString([]byte(id))+"}")
		if err != nil {
			t.Fatal(err)
		}
		owner[m.Options().Addr] = append(owner[m.Options().Addr], id)
	}
	var frozen *backends.Redis
	for _, r := range c.Nodes() {
		if len(owner[r.Addr]) > 0 {
			frozen = r
			break
		}
	}
	if frozen == nil {
		t.Fatal("no primary serves any of the clients")
	}
	var healthy []string
	for addr, ids := range owner {
		if addr != frozen.Addr {
			healthy = append(healthy, ids...)
		}
	}
	dead := owner[frozen.Addr]
	// Every client's connection is open before the freeze.
	for _, id := range append(append([]string{}, dead...), healthy...) {
		if _, _, err := s.Lookup(ctx, id); err != nil {
			t.Fatalf("lookup %s before the freeze: %v", id, err)
		}
	}
	if err := frozen.Pause(); err != nil {
		t.Fatal(err)
	}
	defer frozen.Resume()

	// Three calls in a row for the frozen primary's clients time out: its guard trips.
	lookup := func(id string) (time.Duration, error) {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		_, _, err := s.Lookup(cctx, id)
		return time.Since(t0), err
	}
	for i := range 3 {
		if took, err := lookup(dead[i]); err == nil {
			t.Fatalf("lookup of %s on the frozen primary succeeded (%v)", dead[i], took)
		}
	}
	// At once (within the guard's first probe interval): every other client's calls go
	// through, and the frozen primary's fail without waiting.
	for _, id := range healthy[:20] {
		if took, err := lookup(id); err != nil {
			t.Fatalf("lookup of %s, on a healthy primary, refused (in %v) after three of the frozen primary's time-outs: %v",
				id, took, err)
		}
	}
	took, err := lookup(dead[3])
	if err == nil {
		t.Fatalf("lookup of %s on the frozen primary succeeded", dead[3])
	}
	if took > 50*time.Millisecond {
		t.Fatalf("lookup of %s on the frozen primary took %v after three time-outs: its guard did not trip (%v)", dead[3], took, err)
	}
	t.Logf("frozen primary %s: after three time-outs its calls fail in %v (%v); 20 calls for clients of the other primaries all answered",
		frozen.Addr, took, err)
}
