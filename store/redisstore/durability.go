package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Durability says what a write has survived when the store acknowledges it. It applies to
// the writes whose loss would break a promise: Append (an accepted message), Connect,
// Reassert and ConfirmTakeover (who owns a client), Notify (what a node must learn within
// its lease) and SetRetained (a retained message the cluster accepted). The others
// (Disconnect, Remove, DoneNotices, ClearNode, the deletions of expired messages by Peek
// and Retained) are not waited for: losing one costs a duplicate or an untidy entry,
// never a message.
type Durability string

const (
	// DurabilityAuto, the zero value, chooses at New: DurabilityReplica when every
	// primary reports at least one connected replica, DurabilityNone (with a warning)
	// otherwise.
	DurabilityAuto Durability = ""
	// DurabilityNone acknowledges a write once the primary has applied it: in its memory
	// and its append-only file's buffer. Replication is asynchronous, so a failover can
	// lose the last acknowledged writes.
	DurabilityNone Durability = "none"
	// DurabilityReplica acknowledges a batch of writes once at least one replica has it
	// too: WAIT 1 <timeout> after the batch, on the same connection and in the same round
	// trip. The loss of the primary alone then loses nothing acknowledged (Sentinel and
	// Cluster promote the most up-to-date replica).
	DurabilityReplica Durability = "replica"
	// DurabilityAOF acknowledges a batch once it is fsynced to the primary's append-only
	// file and, when the primary had replicas at start, to one replica's: WAITAOF 1 <0|1>
	// <timeout> (Redis 7.2 or later, appendonly yes). It survives a machine crash as well.
	DurabilityAOF Durability = "aof"
)

// errNotDurable means a batch of writes was applied on the primary but not acknowledged by
// the replicas (or fsyncs) its durability needs within the timeout: the call fails with
// store.ErrUnavailable, and a retry of it is safe.
var errNotDurable = errors.New("write not acknowledged durably in time")

// waitSpec is the wait a durable batch ends with.
type waitSpec struct {
	aof      bool
	replicas int64 // replicas that must acknowledge
	timeout  time.Duration
}

func (w *waitSpec) String() string {
	if w.aof {
		return fmt.Sprintf("WAITAOF 1 %d %d", w.replicas, w.timeout.Milliseconds())
	}
	return fmt.Sprintf("WAIT %d %d", w.replicas, w.timeout.Milliseconds())
}

// command is the wait command for one connection's share of a batch.
func (w *waitSpec) command(ctx context.Context) redis.Cmder {
	ms := w.timeout.Milliseconds()
	if w.aof {
		return redis.NewIntSliceCmd(ctx, "waitaof", 1, w.replicas, ms)
	}
	return redis.NewIntCmd(ctx, "wait", w.replicas, ms)
}

// check reports whether a wait command that ran was satisfied.
func (w *waitSpec) check(cmd redis.Cmder) error {
	if err := cmd.Err(); err != nil {
		return fmt.Errorf("%s: %w", w, err)
	}
	switch c := cmd.(type) {
	case *redis.IntCmd:
		if got := c.Val(); got < w.replicas {
			return fmt.Errorf("%w: %d of %d replicas acknowledged within %v", errNotDurable, got, w.replicas, w.timeout)
		}
	case *redis.IntSliceCmd:
		v := c.Val()
		if len(v) != 2 || v[0] < 1 || v[1] < w.replicas {
			return fmt.Errorf("%w: fsynced on %v (local, replicas) within %v, want 1 and %d", errNotDurable, v, w.timeout, w.replicas)
		}
	}
	return nil
}

// waitKey marks a context whose pipelines must end with a wait (its value is a *waiter).
type waitKey struct{}

// waiter collects the outcome of every wait one durable call's pipelines ended with.
type waiter struct {
	spec *waitSpec

	mu   sync.Mutex
	mine map[redis.Cmder]bool // the waits added so far, to drop them from a retried batch
	err  error                // the first wait that was not satisfied
}

// durable returns ctx marked so that every pipeline run under it ends each connection's
// batch with a wait, and the waiter that collects their outcome. With no wait configured
// it returns ctx and nil.
// waitsArg tells a script whether a WAIT or WAITAOF follows it ("1") or not ("0").
func (s *Store) waitsArg() string {
	if s.wait == nil {
		return "0"
	}
	return "1"
}

func (s *Store) durable(ctx context.Context) (context.Context, *waiter) {
	if s.wait == nil {
		return ctx, nil
	}
	w := &waiter{spec: s.wait, mine: map[redis.Cmder]bool{}}
	return context.WithValue(ctx, waitKey{}, w), w
}

// Err is nil if every wait was satisfied.
func (w *waiter) Err() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// batch returns cmds without the waits of an earlier attempt (Redis Cluster re-maps a
// failed batch, the wait included, to retry it) and, if they run scripts, with a new wait
// at the end, which it returns too.
func (w *waiter) batch(ctx context.Context, cmds []redis.Cmder) ([]redis.Cmder, redis.Cmder) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]redis.Cmder, 0, len(cmds)+1)
	scripts := false
	for _, c := range cmds {
		if !w.mine[c] {
			out = append(out, c)
			scripts = scripts || c.Name() == "evalsha" || c.Name() == "eval"
		}
	}
	if !scripts {
		// Not the call's writes: a new connection's handshake, run inside the call.
		return out, nil
	}
	wc := w.spec.command(ctx)
	w.mine[wc] = true
	return append(out, wc), wc
}

func (w *waiter) done(wc redis.Cmder) {
	err := w.spec.check(wc)
	if err == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// waitHook ends every pipeline run under a durable context with the wait, on the same
// connection: WAIT counts the writes sent on the connection it is sent on. On a standalone
// or Sentinel client a pipeline is one connection; on Redis Cluster the hook sits on each
// node's client (OnNewNode), so each node's share of a pipeline, and each share retried
// after a MOVED or ASK redirection, ends with its own wait.
type waitHook struct{}

func (waitHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (waitHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (waitHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		w, _ := ctx.Value(waitKey{}).(*waiter)
		if w == nil {
			return next(ctx, cmds)
		}
		cmds, wc := w.batch(ctx, cmds)
		if len(cmds) == 0 {
			return nil
		}
		err := next(ctx, cmds)
		if wc != nil {
			w.done(wc)
		}
		return err
	}
}

// chooseDurability settles cfg's durability against what the primaries report, and
// returns the wait durable writes end with (nil for none).
func (s *Store) chooseDurability(ctx context.Context, cfg Config) (*waitSpec, error) {
	replicas, aofOn, version, evicts, err := s.primaryFacts(ctx)
	if err != nil {
		return nil, s.fail("durability", err)
	}
	if evicts != "" {
		// Evicting deletes whole keys, mailboxes among them (their keys expire too, so the
		// volatile-* policies take them as well), and the writer is never told.
		return nil, fmt.Errorf("redisstore: redis %s evicts keys when full (%s): it would delete mailboxes without a word; "+
			"set maxmemory-policy noeviction, with which a full Redis refuses writes (answered 507) instead", s.where, evicts)
	}
	d := cfg.Durability
	if d == DurabilityAuto {
		d = DurabilityNone
		if replicas > 0 {
			d = DurabilityReplica
		} else {
			s.log.Warn("redisstore: no replica connected to the primary, so writes are acknowledged without waiting for one "+
				"(durability none): a failover can lose acknowledged messages; run replicas or set the durability explicitly",
				"redis", s.where)
		}
	}
	s.durability = d
	switch d {
	case DurabilityNone:
		return nil, nil
	case DurabilityReplica:
		if replicas == 0 {
			s.log.Warn("redisstore: durability replica but no replica is connected: writes fail until one is", "redis", s.where)
		}
		return &waitSpec{replicas: 1, timeout: cfg.DurabilityTimeout}, nil
	}
	// aof
	if !atLeast(version, 7, 2) {
		return nil, fmt.Errorf("redisstore: durability aof needs WAITAOF, Redis 7.2 or later; redis %s is %s", s.where, version)
	}
	if !aofOn {
		return nil, fmt.Errorf("redisstore: durability aof needs appendonly yes on redis %s", s.where)
	}
	return &waitSpec{aof: true, replicas: min(replicas, 1), timeout: cfg.DurabilityTimeout}, nil
}

// primaryFacts reads from every primary the fewest connected replicas, whether every one
// has its append-only file on, the oldest version, and the eviction policy of one that
// evicts when full ("" if none does).
func (s *Store) primaryFacts(ctx context.Context) (replicas int64, aofOn bool, version, evicts string, err error) {
	var mu sync.Mutex
	first := true
	aofOn = true
	err = s.eachPrimary(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "server", "replication", "persistence", "memory").Result()
		if err != nil {
			return err
		}
		f := infoFields(info)
		n, _ := strconv.ParseInt(f["connected_slaves"], 10, 64)
		mu.Lock()
		defer mu.Unlock()
		if first || n < replicas {
			replicas = n
		}
		if v := f["redis_version"]; first || versionLess(v, version) {
			version = v
		}
		aofOn = aofOn && f["aof_enabled"] == "1"
		// Without a maxmemory, Redis never evicts (whatever the policy says).
		if p := f["maxmemory_policy"]; p != "" && p != "noeviction" && f["maxmemory"] != "0" && f["maxmemory"] != "" {
			evicts = fmt.Sprintf("maxmemory-policy %s, maxmemory %s", p, f["maxmemory"])
		}
		first = false
		return nil
	})
	return replicas, aofOn, version, evicts, err
}

// eachPrimary calls fn with a client of every primary: the one server of a standalone or
// Sentinel client, every master of a cluster.
func (s *Store) eachPrimary(ctx context.Context, fn func(context.Context, *redis.Client) error) error {
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	}
	return fmt.Errorf("unexpected client %T", s.rdb)
}

// infoFields reads INFO's "field:value" lines.
func infoFields(info string) map[string]string {
	f := map[string]string{}
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			f[k] = v
		}
	}
	return f
}

// versionParts reads "7.0.15" as [7 0 15].
func versionParts(v string) []int {
	var out []int
	for p := range strings.SplitSeq(v, ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			break
		}
		out = append(out, n)
	}
	return out
}

func versionLess(a, b string) bool { return slices.Compare(versionParts(a), versionParts(b)) < 0 }

func atLeast(v string, major, minor int) bool {
	return slices.Compare(versionParts(v), []int{major, minor}) >= 0
}
