package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// startReplicated starts a primary and one replica of it, each with args, and waits until
// the replica is in sync. They stop when the test ends.
func startReplicated(t testing.TB, args ...string) (primary, replica *backends.Redis) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := backends.StartRedis(ctx, backends.RedisConfig{Dir: t.TempDir(), Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	host, port, _ := strings.Cut(p.Addr, ":")
	r, err := backends.StartRedis(ctx, backends.RedisConfig{Dir: t.TempDir(),
		Args: append([]string{"--replicaof", host + " " + port}, args...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	raw := rawClient(t, p.Addr)
	testenv.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		info, err := raw.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "connected_slaves:1") || !strings.Contains(info, "state=online") {
			return fmt.Errorf("replica not in sync: %s", info)
		}
		return nil
	})
	return p, r
}

// TestDurabilityChosen: with Durability unset the store waits for a replica when the
// primary has one, and does not when it has none (and warns); aof needs Redis 7.2.
func TestDurabilityChosen(t *testing.T) {
	if d := open(t, testConfig(t, shared.Redis(t).Addr)).Durability(); d != redisstore.DurabilityNone {
		t.Errorf("durability %q on a Redis without replicas, want none", d)
	}
	p, _ := startReplicated(t)
	cfg := testConfig(t, p.Addr)
	if d := open(t, cfg).Durability(); d != redisstore.DurabilityReplica {
		t.Errorf("durability %q on a primary with a replica, want replica", d)
	}
	cfg.Durability = redisstore.DurabilityNone
	if d := open(t, cfg).Durability(); d != redisstore.DurabilityNone {
		t.Errorf("durability %q when none was asked for", d)
	}
	cfg.Durability = redisstore.DurabilityAOF
	s, err := redisstore.New(t.Context(), cfg)
	version := redisVersion(t, p.Addr)
	switch {
	case versionAtLeast72(version) && err != nil:
		t.Errorf("durability aof on Redis %s: %v", version, err)
	case versionAtLeast72(version):
		s.Close()
	case err == nil || !strings.Contains(err.Error(), "7.2"):
		t.Errorf("durability aof on Redis %s = %v, want an error naming 7.2", version, err)
	default:
		t.Logf("aof on Redis %s: %v", version, err)
	}
}

func redisVersion(t *testing.T, addr string) string {
	info, err := rawClient(t, addr).Info(t.Context(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return ""
}

func versionAtLeast72(v string) bool {
	var major, minor int
	fmt.Sscanf(v, "%d.%d", &major, &minor)
	return major > 7 || major == 7 && minor >= 2
}

// pipelineCounter records the commands of each pipeline a store sends, as the server
// receives them (it is the innermost hook).
type pipelineCounter struct {
	mu        sync.Mutex
	pipelines [][]string
}

func (c *pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (c *pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, cmd := range cmds {
			names[i] = cmd.Name()
		}
		c.mu.Lock()
		c.pipelines = append(c.pipelines, names)
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

// TestDurableWrites: with durability replica, an Append of messages for many clients is
// one pipeline ending with one WAIT. When the replica stops answering (SIGSTOP), every
// durable write (Append, Connect, Reassert, ConfirmTakeover, Notify, SetRetained) fails
// with ErrUnavailable once the wait runs out, although the primary applied it; the others
// (Disconnect, Remove, Peek, DoneNotices, Retained) go on. When the replica is back, a retry of the
// failed Append finds its messages there (duplicates) and succeeds.
func TestDurableWrites(t *testing.T) {
	p, replica := startReplicated(t)
	cfg := testConfig(t, p.Addr)
	cfg.Durability = redisstore.DurabilityReplica
	// Long enough for a replica sharing two busy cores to acknowledge a batch; the waits
	// that must fail below are judged against it.
	cfg.DurabilityTimeout = time.Second
	s := open(t, cfg)
	counter := &pipelineCounter{}
	redisstore.AddHook(s, counter)
	ctx := t.Context()

	var msgs []store.Message
	for i := range 200 {
		msgs = append(msgs, storetest.NewMessage(fmt.Sprint("c", i), "m1"))
	}
	// Loads the script; retried while the replica that just joined catches up (safe: the
	// retry of a stored message is a duplicate).
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		_, err := s.Append(ctx, 10, msgs[:1])
		return err
	})
	counter.mu.Lock()
	counter.pipelines = nil
	counter.mu.Unlock()
	start := time.Now()
	if res, err := s.Append(ctx, 10, msgs); err != nil || res[199].Err != nil {
		t.Fatalf("append: %v", err)
	}
	t.Logf("durable Append of 200 messages for 200 clients: %v", time.Since(start))
	counter.mu.Lock()
	got := counter.pipelines
	counter.mu.Unlock()
	if len(got) != 1 || len(got[0]) != 201 || got[0][200] != "wait" || strings.Count(strings.Join(got[0], " "), "wait") != 1 {
		t.Fatalf("pipelines sent: %d, the first of %d commands ending %q; want one of 200 scripts and a WAIT",
			len(got), len(got[0]), got[0][len(got[0])-1])
	}

	pres := storetest.NewPresence("c1", "n1", 1)
	if _, err := s.Connect(ctx, pres); err != nil {
		t.Fatal(err)
	}
	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := replica.Resume(); err != nil {
				t.Error(err)
			}
		}
	}
	defer resume()
	later := []store.Message{storetest.NewMessage("c1", "m2"), storetest.NewMessage("c2", "m2")}
	again := pres
	again.Epoch = 2
	durable := map[string]func() error{
		"Append": func() error { _, err := s.Append(ctx, 10, later); return err },
		"Connect": func() error {
			_, err := s.Connect(ctx, storetest.NewPresence("c9", "n1", 1))
			return err
		},
		"Reassert":        func() error { return s.Reassert(ctx, again) },
		"ConfirmTakeover": func() error { return s.ConfirmTakeover(ctx, "c1", pres.Session) },
		"Notify":          func() error { return s.Notify(ctx, "n1", store.Notice{Kind: store.NoticeMailbox, Client: "c1"}) },
		"SetRetained": func() error {
			_, err := s.SetRetained(ctx, store.Retained{Topic: "a/b", Data: []byte("x")})
			return err
		},
	}
	for name, op := range durable {
		start := time.Now()
		err := op()
		took := time.Since(start)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the replica stopped: %v, want ErrUnavailable", name, err)
		}
		if took < cfg.DurabilityTimeout || took > cfg.DurabilityTimeout+time.Second {
			t.Errorf("%s failed after %v, want about the durability timeout %v", name, took, cfg.DurabilityTimeout)
		}
		t.Logf("%s with the replica stopped: after %v: %v", name, took.Round(time.Millisecond), err)
	}
	others := map[string]func() error{
		"Peek":        func() error { _, err := s.Peek(ctx, "c1", 0, 10); return err },
		"Remove":      func() error { return s.Remove(ctx, store.Removal{Client: "c5", IDs: []string{"m1"}}) },
		"DoneNotices": func() error { return s.DoneNotices(ctx, "n1", 1) },
		"Disconnect":  func() error { _, err := s.Disconnect(ctx, "c3", "nobody"); return err },
		"Lookup":      func() error { _, _, err := s.Lookup(ctx, "c1"); return err },
		"Retained":    func() error { _, err := s.Retained(ctx); return err },
	}
	for name, op := range others {
		if err := op(); err != nil {
			t.Errorf("%s with the replica stopped: %v; it waits for no replica", name, err)
		}
	}
	resume()
	res, err := s.Append(ctx, 10, later)
	if err != nil {
		t.Fatalf("append after the replica is back: %v", err)
	}
	for i, r := range res {
		if r.Err != nil || !r.Duplicate {
			t.Errorf("retried message %d: %+v; want a duplicate (the primary applied the failed call)", i, r)
		}
	}
}

// TestMinReplicasToWrite: a primary that runs with min-replicas-to-write 1 and has lost
// its replica refuses writes (NOREPLICAS: nothing written), which the store reports as
// ErrUnavailable naming the refusal, within three durability timeouts; reads go on.
func TestMinReplicasToWrite(t *testing.T) {
	p, replica := startReplicated(t, "--min-replicas-to-write", "1", "--min-replicas-max-lag", "1")
	cfg := testConfig(t, p.Addr)
	cfg.DurabilityTimeout = 300 * time.Millisecond
	s := open(t, cfg)
	ctx := t.Context()
	// With the replica in step, appends are accepted. Right after it joined (and on a busy
	// machine) its first acknowledgement can miss the 300ms; a retry of the same message is
	// safe (answered as a duplicate once stored).
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		res, err := s.Append(ctx, 10, []store.Message{storetest.NewMessage("c1", "m1")})
		if err == nil && res[0].Err != nil {
			err = res[0].Err
		}
		return err
	})
	if err := replica.Kill(); err != nil {
		t.Fatal(err)
	}
	var last error
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		start := time.Now()
		_, last = s.Append(ctx, 10, []store.Message{storetest.NewMessage("c1", "m2")})
		if errors.Is(last, store.ErrUnavailable) && strings.Contains(last.Error(), "NOREPLICAS") {
			// The refusal comes with the wait that followed the scripts in the pipeline,
			// and go-redis sends a pipeline answered NOREPLICAS twice more.
			if took := time.Since(start); took > 3*cfg.DurabilityTimeout+time.Second {
				return fmt.Errorf("refused after %v", took)
			}
			return nil
		}
		return fmt.Errorf("append without a replica: %v", last)
	})
	t.Logf("append without a replica: %v", last)
	start := time.Now()
	_, err := s.Append(ctx, 10, []store.Message{storetest.NewMessage("c1", "m3")})
	t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if msgs, err := s.Peek(ctx, "c1", 0, 10); err != nil || len(msgs) == 0 || msgs[0].ID != "m1" {
		t.Fatalf("peek without a replica = %v, %v", msgs, err)
	}
}

// TestDuplicateAppendWrites: an Append that finds only duplicates (a retry of a call that
// was stored though its answer, or its WAIT, failed) answers them as stored, and, with a
// wait for a replica to follow, still writes: a WAIT or WAITAOF covers the writes its own connection sent (Redis keeps a
// connection's offset at its last propagated command), so a run that wrote nothing need
// not wait for the first copy to reach a replica or the disk. The write is the counter,
// again, with its value and its expiry.
func TestDuplicateAppendWrites(t *testing.T) {
	ctx := t.Context()
	p, _ := startReplicated(t)
	cfg := testConfig(t, p.Addr)
	cfg.Durability = redisstore.DurabilityReplica
	cfg.DurabilityTimeout = time.Second // a replica sharing two busy cores, as in TestDurableWrites
	s := open(t, cfg)
	raw := rawClient(t, p.Addr)
	changes := func() int64 {
		t.Helper()
		info, err := raw.Info(ctx, "persistence").Result()
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(redisstore.InfoFields(info)["rdb_changes_since_last_save"], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	msg := storetest.NewMessage("c1", "m1")
	// Loads the script; retried while the replica that just joined catches up (safe: the
	// retry of a stored message is a duplicate).
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		_, err := s.Append(ctx, 10, []store.Message{msg})
		return err
	})
	seqKey := redisstore.SeqKey(cfg.Prefix, "c1")
	ttl := raw.PTTL(ctx, seqKey).Val()
	counter := raw.Get(ctx, seqKey).Val()
	before := changes()
	if res, err := s.Append(ctx, 10, []store.Message{msg}); err != nil || !res[0].Duplicate {
		t.Fatalf("second append: %+v, %v; want a duplicate", res, err)
	}
	if after := changes(); after <= before {
		t.Fatalf("a duplicate-only append wrote nothing (%d changes before, %d after): a WAIT after it would not cover the first copy", before, after)
	}
	if got, left := raw.Get(ctx, seqKey).Val(), raw.PTTL(ctx, seqKey).Val(); got != counter || left <= 0 || left > ttl {
		t.Fatalf("counter %q with %v left after the duplicate, want %q with at most %v", got, left, counter, ttl)
	}
}

// TestEvictingRedisRefused: a Redis that evicts keys when full (any maxmemory-policy but
// noeviction, with a maxmemory set) would delete mailboxes without a word, answered 200
// all along (a trial lost 809 of 2,000 accepted messages to allkeys-lru): the store refuses
// it, naming the policy. Without a maxmemory Redis never evicts, and noeviction refuses
// writes instead, which the router answers 507.
func TestEvictingRedisRefused(t *testing.T) {
	r := testenv.Redis(t)
	raw := rawClient(t, r.Addr)
	set := func(kv ...string) {
		t.Helper()
		for i := 0; i < len(kv); i += 2 {
			if err := raw.ConfigSet(t.Context(), kv[i], kv[i+1]).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		maxmemory, policy string
		refused           bool
	}{
		{"100mb", "allkeys-lru", true},
		{"100mb", "volatile-ttl", true},
		{"100mb", "noeviction", false},
		{"0", "allkeys-lru", false},
	} {
		set("maxmemory", tc.maxmemory, "maxmemory-policy", tc.policy)
		s, err := redisstore.New(t.Context(), testConfig(t, r.Addr))
		switch {
		case tc.refused && (err == nil || !strings.Contains(err.Error(), "maxmemory-policy "+tc.policy)):
			t.Errorf("maxmemory %s, %s: %v; want refused, naming the policy", tc.maxmemory, tc.policy, err)
		case !tc.refused && err != nil:
			t.Errorf("maxmemory %s, %s: %v", tc.maxmemory, tc.policy, err)
		}
		if s != nil {
			s.Close()
		}
	}
}
