package redisstore_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// keyGrace is how long the documented layout keeps a mailbox's keys past its latest
// message's expiry.
const keyGrace = time.Minute

func clientTag(prefix, client string) string {
	return prefix + ":{c:" + base64.RawURLEncoding.EncodeToString([]byte(client)) + "}:"
}

func nodeTag(prefix, node string) string {
	return prefix + ":{n:" + base64.RawURLEncoding.EncodeToString([]byte(node)) + "}:"
}

// redisTime is the Redis server's clock.
func redisTime(t *testing.T, raw *redis.Client) time.Time {
	t.Helper()
	now, err := raw.Time(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now
}

func appendOne(t *testing.T, s store.Store, limit int, m store.Message) store.AppendResult {
	t.Helper()
	res, err := s.Append(t.Context(), limit, []store.Message{m})
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("append %s to %q = %+v, %v", m.ID, m.To, res, err)
	}
	return res[0]
}

// within checks that got, a Unix ms instant, lies in [lo, hi].
func within(t *testing.T, what string, got int64, lo, hi time.Time) {
	t.Helper()
	if got < lo.UnixMilli() || got > hi.UnixMilli() {
		t.Fatalf("%s is %v, want between %v and %v", what, time.UnixMilli(got), lo, hi)
	}
}

// TestKeyLayout checks the documented key names and types, and that every expiry is
// Redis's clock plus a duration: the message's expiry in its header, the mailbox keys'
// (the latest message's plus the grace, pushed out and never pulled in) and the
// notices'.
func TestKeyLayout(t *testing.T) {
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	s := open(t, cfg)
	raw := rawClient(t, addr)
	ctx := t.Context()

	client := "a}:{b"
	tag := clientTag(cfg.Prefix, client)
	late := storetest.NewMessage(client, "late")
	late.TTL = 2 * time.Hour
	early := storetest.NewMessage(client, "early")
	before := redisTime(t, raw)
	lateRes := appendOne(t, s, 10, late)
	earlyRes := appendOne(t, s, 10, early)
	after := redisTime(t, raw)
	if _, err := s.Connect(ctx, storetest.NewPresence(client, "n1", 1)); err != nil {
		t.Fatal(err)
	}
	for k, typ := range map[string]string{"p": "hash", "o": "zset", "m": "hash", "seq": "string"} {
		if got, err := raw.Type(ctx, tag+k).Result(); err != nil || got != typ {
			t.Fatalf("key %q is a %q, %v; want a %s", tag+k, got, err, typ)
		}
	}
	order, err := raw.ZRangeWithScores(ctx, tag+"o", 0, -1).Result()
	if err != nil || len(order) != 2 || order[0].Member != "late" || uint64(order[0].Score) != lateRes.Seq ||
		order[1].Member != "early" || uint64(order[1].Score) != earlyRes.Seq {
		t.Fatalf("order set %+v, %v; want late and early scored by seq", order, err)
	}
	if got, err := raw.Get(ctx, tag+"seq").Result(); err != nil || got != strconv.FormatUint(earlyRes.Seq, 10) {
		t.Fatalf("counter %q, %v; want the last seq %d", got, err, earlyRes.Seq)
	}
	if lateRes.Seq < uint64(before.UnixMicro()) || lateRes.Seq > uint64(after.UnixMicro()) {
		t.Fatalf("seq %d of a new client, want Redis's clock in µs, between %d and %d",
			lateRes.Seq, before.UnixMicro(), after.UnixMicro())
	}
	v, err := raw.HGet(ctx, tag+"m", "late").Result()
	if err != nil {
		t.Fatal(err)
	}
	header := strings.SplitN(v, ",", 4)
	if len(header) != 4 || header[0] != "2" || header[2] != strconv.FormatUint(lateRes.Seq, 10) {
		t.Fatalf("stored value starts %q, want 2,<expiry>,%d,", v[:min(len(v), 40)], lateRes.Seq)
	}
	exp, err := strconv.ParseInt(header[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	within(t, "the stored expiry", exp, before.Add(late.TTL).Truncate(time.Millisecond), after.Add(late.TTL))
	for _, k := range []string{"o", "m", "seq"} {
		exp, err := raw.PExpireTime(ctx, tag+k).Result()
		if err != nil {
			t.Fatal(err)
		}
		within(t, k+"'s expiry", exp.Milliseconds(),
			before.Add(late.TTL+keyGrace).Truncate(time.Millisecond), after.Add(late.TTL+keyGrace))
	}
	if ttl, err := raw.PTTL(ctx, tag+"p").Result(); err != nil || ttl != -1 {
		t.Fatalf("presence has TTL %v, %v; want none", ttl, err)
	}
	if ok, err := raw.SIsMember(ctx, nodeTag(cfg.Prefix, "n1")+"clients", client).Result(); err != nil || !ok {
		t.Fatalf("client not in the node index: %v", err)
	}

	before = redisTime(t, raw)
	if err := s.Notify(ctx, "n}1", store.Notice{Kind: store.NoticeMailbox, Client: client},
		store.Notice{Kind: store.NoticeRevoke, Client: client, Session: "s,1"}); err != nil {
		t.Fatal(err)
	}
	after = redisTime(t, raw)
	ntag := nodeTag(cfg.Prefix, "n}1")
	key := ntag + "notices"
	entries, err := raw.LRange(ctx, key, 0, -1).Result()
	if err != nil || len(entries) != 2 {
		t.Fatalf("notices list %q holds %v, %v; want 2 entries", key, entries, err)
	}
	taken, err := s.TakeNotices(ctx, "n}1", 10)
	if err != nil || len(taken) != 2 {
		t.Fatalf("take = %v, %v", taken, err)
	}
	for i, e := range entries {
		seq, _, ok := strings.Cut(e, ",")
		if !ok || seq != strconv.FormatUint(taken[i].Seq, 10) {
			t.Fatalf("notice entry %q, want it to start with its seq %d and a comma", e, taken[i].Seq)
		}
	}
	if taken[0].Seq < uint64(before.UnixMicro()) || taken[0].Seq > uint64(after.UnixMicro()) ||
		taken[1].Seq != taken[0].Seq+1 {
		t.Fatalf("notice seqs %d, %d of a new node, want Redis's clock in µs (between %d and %d), then one more",
			taken[0].Seq, taken[1].Seq, before.UnixMicro(), after.UnixMicro())
	}
	if got, err := raw.Get(ctx, ntag+"nseq").Result(); err != nil || got != strconv.FormatUint(taken[1].Seq, 10) {
		t.Fatalf("notice counter %q, %v; want the last seq %d", got, err, taken[1].Seq)
	}
	for _, k := range []string{key, ntag + "nseq"} {
		if ttl, err := raw.PTTL(ctx, k).Result(); err != nil || ttl > time.Hour || ttl < time.Hour-time.Minute {
			t.Fatalf("%s expires in %v, %v; want an hour", k, ttl, err)
		}
	}
	if err := s.DoneNotices(ctx, "n}1", taken[0].Seq); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.LLen(ctx, key).Result(); err != nil || n != 1 {
		t.Fatalf("notices list after done of the first holds %d, %v; want 1", n, err)
	}
	if ttl, err := raw.PTTL(ctx, key).Result(); err != nil || ttl < time.Hour-time.Minute {
		t.Fatalf("notices expire in %v after done, %v; want the hour kept", ttl, err)
	}
}

// TestTakeoverLayout: pending takeovers are a list beside the presence, under the client's
// hash tag, four elements each; Disconnect and ClearNode delete the presence and leave it;
// ConfirmTakeover by the owner deletes it.
func TestTakeoverLayout(t *testing.T) {
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	s := open(t, cfg)
	raw := rawClient(t, addr)
	ctx := t.Context()
	client := "a}:{b"
	tag := clientTag(cfg.Prefix, client)
	s1 := storetest.NewPresence(client, "n}1", 1)
	s2 := storetest.NewPresence(client, "n2", 2)
	for _, p := range []store.Presence{s1, s2} {
		if _, err := s.Connect(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	since, _ := s1.Since.MarshalText()
	want := []string{"n}1", "1", s1.Session, string(since)}
	if got, err := raw.LRange(ctx, tag+"t", 0, -1).Result(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("takeovers list %q = %q, %v; want %q", tag+"t", got, err, want)
	}
	if ttl, err := raw.PTTL(ctx, tag+"t").Result(); err != nil || ttl != -1 {
		t.Fatalf("takeovers have TTL %v, %v; want none", ttl, err)
	}
	if ok, err := s.Disconnect(ctx, client, s2.Session); err != nil || !ok {
		t.Fatalf("disconnect = %v, %v", ok, err)
	}
	if n, err := raw.Exists(ctx, tag+"p").Result(); err != nil || n != 0 {
		t.Fatalf("presence key left after disconnect: %d, %v", n, err)
	}
	if n, err := raw.LLen(ctx, tag+"t").Result(); err != nil || n != 4 {
		t.Fatalf("takeovers after disconnect hold %d, %v; want 4 elements", n, err)
	}
	s3 := storetest.NewPresence(client, "n3", 1)
	if _, err := s.Connect(ctx, s3); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ClearNode(ctx, "n3", 1); err != nil || n != 1 {
		t.Fatalf("ClearNode = %d, %v", n, err)
	}
	if n, err := raw.LLen(ctx, tag+"t").Result(); err != nil || n != 4 {
		t.Fatalf("takeovers after ClearNode hold %d, %v; want 4 elements", n, err)
	}
	s4 := storetest.NewPresence(client, "n4", 1)
	if _, err := s.Connect(ctx, s4); err != nil {
		t.Fatal(err)
	}
	if err := s.ConfirmTakeover(ctx, client, s4.Session); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Exists(ctx, tag+"t").Result(); err != nil || n != 0 {
		t.Fatalf("takeovers key left after confirm: %d, %v", n, err)
	}
	if got, err := raw.HGet(ctx, tag+"p", "session").Result(); err != nil || got != s4.Session {
		t.Fatalf("presence session %q, %v; want %q", got, err, s4.Session)
	}
}

// TestNoCallerClockSentToRedis: no command the mailbox and notice operations send
// carries an instant from this process's clock, in seconds, milliseconds or
// microseconds: every expiry and sequence number comes from Redis's TIME.
func TestNoCallerClockSentToRedis(t *testing.T) {
	s := open(t, testConfig(t, shared.Redis(t).Addr))
	rec := &argsRecorder{}
	redisstore.AddHook(s, rec)
	ctx := t.Context()
	var msgs []store.Message
	for i := range 5 {
		m := storetest.NewMessage(fmt.Sprint("c", i%2), fmt.Sprint("m", i))
		m.TTL = time.Duration(i+1) * time.Second
		if i%2 == 0 {
			m.Priority = store.PriorityHigh
		}
		msgs = append(msgs, m)
	}
	if _, err := s.Append(ctx, 10, msgs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Peek(ctx, "c0", 0, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PeekHigh(ctx, "c0", 0, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, store.Removal{Client: "c0", IDs: []string{"m0"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Notify(ctx, "n1", store.Notice{Kind: store.NoticeMailbox, Client: "c1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeNotices(ctx, "n1", 10); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	lo, hi := now.AddDate(0, 0, -1), now.AddDate(0, 0, 1)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.args) == 0 {
		t.Fatal("the hook saw no commands")
	}
	for _, args := range rec.args {
		for _, a := range args {
			n, err := strconv.ParseInt(fmt.Sprint(a), 10, 64)
			if err != nil {
				continue
			}
			for _, at := range []time.Time{time.Unix(n, 0), time.UnixMilli(n), time.UnixMicro(n)} {
				if at.After(lo) && at.Before(hi) {
					t.Fatalf("command %v carries %d, an instant of this process's clock (%v)", args[:1], n, at)
				}
			}
		}
	}
}

// argsRecorder is a go-redis hook that records every command's arguments.
type argsRecorder struct {
	mu   sync.Mutex
	args [][]any
}

func (r *argsRecorder) record(cmds ...redis.Cmder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cmds {
		r.args = append(r.args, c.Args())
	}
}

func (r *argsRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *argsRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.record(cmd)
		return next(ctx, cmd)
	}
}

func (r *argsRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.record(cmds...)
		return next(ctx, cmds)
	}
}

// TestAbandonedMailboxVanishes: once its last message expired, Redis deletes a mailbox's
// keys by itself after the grace, and the client's numbering still goes on.
func TestAbandonedMailboxVanishes(t *testing.T) {
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	s := open(t, cfg)
	redisstore.SetKeyGrace(s, 200*time.Millisecond)
	raw := rawClient(t, addr)
	tag := clientTag(cfg.Prefix, "abandoned")
	m := storetest.NewMessage("abandoned", "m")
	m.TTL = 300 * time.Millisecond
	first := appendOne(t, s, 10, m)
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		n, err := raw.Exists(t.Context(), tag+"o", tag+"m", tag+"seq").Result()
		if err == nil && n != 0 {
			return fmt.Errorf("%d of the mailbox's keys left", n)
		}
		return err
	})
	if again := appendOne(t, s, 10, storetest.NewMessage("abandoned", "m")); again.Duplicate || again.Seq <= first.Seq {
		t.Fatalf("append after the keys expired: %+v, want a new seq after %d", again, first.Seq)
	}
}

// TestSeqSurvivesLostCounter: a client's sequence numbers keep growing when its counter
// key is gone (expired with an abandoned mailbox), and follow a counter that is ahead of
// Redis's clock.
func TestSeqSurvivesLostCounter(t *testing.T) {
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	s := open(t, cfg)
	raw := rawClient(t, addr)
	ctx := t.Context()
	tag := clientTag(cfg.Prefix, "c1")
	first := appendOne(t, s, 10, storetest.NewMessage("c1", "m1"))
	if err := raw.Del(ctx, tag+"o", tag+"m", tag+"seq").Err(); err != nil {
		t.Fatal(err)
	}
	second := appendOne(t, s, 10, storetest.NewMessage("c1", "m2"))
	if second.Seq <= first.Seq {
		t.Fatalf("seq %d after the keys were lost, want more than %d", second.Seq, first.Seq)
	}
	ahead := second.Seq + 5_000_000_000
	if err := raw.Set(ctx, tag+"seq", ahead, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if third := appendOne(t, s, 10, storetest.NewMessage("c1", "m3")); third.Seq != ahead+1 {
		t.Fatalf("seq %d after a counter at %d, want %d", third.Seq, ahead, ahead+1)
	}
}

// TestScriptsReloadAfterFlush: after Redis lost its script cache, every operation loads
// its script again, including those that run scripts in a pipeline.
func TestScriptsReloadAfterFlush(t *testing.T) {
	addr := shared.Redis(t).Addr
	s := open(t, testConfig(t, addr))
	raw := rawClient(t, addr)
	ctx := t.Context()
	flush := func() {
		t.Helper()
		if err := raw.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	p := storetest.NewPresence("c1", "n1", 1)
	if _, err := s.Connect(ctx, p); err != nil {
		t.Fatal(err)
	}
	flush()
	res, err := s.Append(ctx, 10, []store.Message{
		storetest.NewMessage("c1", "a"), storetest.NewMessage("c2", "b"), storetest.NewMessage("c1", "c"),
	})
	if err != nil || len(res) != 3 || res[2].Depth != 2 || res[1].Depth != 1 || res[0].Duplicate {
		t.Fatalf("append after a flush = %+v, %v", res, err)
	}
	flush()
	if msgs, err := s.Peek(ctx, "c1", 0, 10); err != nil || len(msgs) != 2 {
		t.Fatalf("peek after a flush = %d messages, %v", len(msgs), err)
	}
	flush()
	if err := s.Remove(ctx, store.Removal{Client: "c1", IDs: []string{"a"}}, store.Removal{Client: "c2", IDs: []string{"b"}}); err != nil {
		t.Fatalf("remove after a flush: %v", err)
	}
	if d, err := s.Depth(ctx, "c1"); err != nil || d != 1 {
		t.Fatalf("depth after remove = %d, %v; want 1", d, err)
	}
	flush()
	if err := s.Notify(ctx, "n1", store.Notice{Kind: store.NoticeMailbox, Client: "c1"}); err != nil {
		t.Fatalf("notify after a flush: %v", err)
	}
	ns, err := s.TakeNotices(ctx, "n1", 10)
	if err != nil || len(ns) != 1 {
		t.Fatalf("take = %v, %v", ns, err)
	}
	flush()
	if err := s.DoneNotices(ctx, "n1", ns[0].Seq); err != nil {
		t.Fatalf("done after a flush: %v", err)
	}
	if ns, err := s.TakeNotices(ctx, "n1", 10); err != nil || len(ns) != 0 {
		t.Fatalf("take after done = %v, %v; want none", ns, err)
	}
	flush()
	if err := s.Reassert(ctx, p); err != nil {
		t.Fatalf("reassert after a flush: %v", err)
	}
	flush()
	if err := s.ConfirmTakeover(ctx, "c1", p.Session); err != nil {
		t.Fatalf("confirm takeover after a flush: %v", err)
	}
	flush()
	if n, err := s.ClearNode(ctx, "n1", 1); err != nil || n != 1 {
		t.Fatalf("ClearNode after a flush = %d, %v; want 1", n, err)
	}
}

// TestNotifyRetryNumbersAgain: a second run of one Notify's script, as a go-redis retry
// after a lost reply would make, appends the notices again under new numbers (which the
// contract allows), and a retried DoneNotices removes nothing more.
func TestNotifyRetryNumbersAgain(t *testing.T) {
	addr := shared.Redis(t).Addr
	s := open(t, testConfig(t, addr))
	ctx := t.Context()
	n := store.Notice{Kind: store.NoticeMailbox, Client: "c1"}
	for range 2 {
		if err := s.Notify(ctx, "n1", n); err != nil {
			t.Fatal(err)
		}
	}
	ns, err := s.TakeNotices(ctx, "n1", 10)
	if err != nil || len(ns) != 2 || !sameNotice(ns[0], n) || !sameNotice(ns[1], n) || ns[1].Seq <= ns[0].Seq {
		t.Fatalf("take = %v, %v; want the notice twice, numbered apart", ns, err)
	}
	for range 2 {
		if err := s.DoneNotices(ctx, "n1", ns[0].Seq); err != nil {
			t.Fatal(err)
		}
	}
	if rest, err := s.TakeNotices(ctx, "n1", 10); err != nil || len(rest) != 1 || rest[0] != ns[1] {
		t.Fatalf("take after two dones of the first = %v, %v; want the second", rest, err)
	}
}

// TestUndecodableNoticeDeleted: an entry of a node's list that cannot be decoded (no
// version of the store writes one) is logged and deleted by the take that meets it, and
// does not block the head for DoneNotices.
func TestUndecodableNoticeDeleted(t *testing.T) {
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	s := open(t, cfg)
	raw := rawClient(t, addr)
	ctx := t.Context()
	key := nodeTag(cfg.Prefix, "n1") + "notices"
	if err := raw.RPush(ctx, key, "\x01\x02c1\x00", "7,\x09").Err(); err != nil {
		t.Fatal(err)
	}
	n := store.Notice{Kind: store.NoticeMailbox, Client: "c1"}
	if err := s.Notify(ctx, "n1", n); err != nil {
		t.Fatal(err)
	}
	if err := raw.LPush(ctx, key, "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.DoneNotices(ctx, "n1", 0); err != nil {
		t.Fatal(err)
	}
	ns, err := s.TakeNotices(ctx, "n1", 10)
	if err != nil || len(ns) != 1 || !sameNotice(ns[0], n) {
		t.Fatalf("take = %v, %v; want the one good notice", ns, err)
	}
	if got, err := raw.LRange(ctx, key, 0, -1).Result(); err != nil || len(got) != 1 {
		t.Fatalf("list after the take = %q, %v; want the good notice alone", got, err)
	}
}

// TestNodeIndexShrinks checks that clients that left a node leave its index, so the index
// of a long-running node does not grow with every client it ever served.
func TestNodeIndexShrinks(t *testing.T) {
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	s := open(t, cfg)
	raw := rawClient(t, addr)
	ctx := t.Context()
	nodeKey := func(n string) string { return nodeTag(cfg.Prefix, n) + "clients" }
	a := storetest.NewPresence("a", "n1", 1)
	b := storetest.NewPresence("b", "n1", 1)
	for _, p := range []store.Presence{a, b} {
		if _, err := s.Connect(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.Disconnect(ctx, "a", a.Session); err != nil || !ok {
		t.Fatalf("disconnect: %v %v", ok, err)
	}
	if _, err := s.Connect(ctx, storetest.NewPresence("b", "n2", 1)); err != nil {
		t.Fatal(err)
	}
	// A Disconnect takes its client out of the node's index after it has answered.
	testenv.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n, err := raw.SCard(ctx, nodeKey("n1")).Result(); err != nil || n != 0 {
			return fmt.Errorf("n1's index holds %d clients, %v; want 0", n, err)
		}
		return nil
	})
	if got, err := raw.SMembers(ctx, nodeKey("n2")).Result(); err != nil || len(got) != 1 || got[0] != "b" {
		t.Fatalf("n2's index holds %v, %v; want [b]", got, err)
	}
}

// TestConnectRetryReportsFirstResult checks that Connect is idempotent: a second run for
// the same session, as a go-redis retry would do, reports the presence and the pending
// takeovers the first reported, and leaves the takeovers list as the first left it.
func TestConnectRetryReportsFirstResult(t *testing.T) {
	addr := shared.Redis(t).Addr
	cfg := testConfig(t, addr)
	s := open(t, cfg)
	raw := rawClient(t, addr)
	ctx := t.Context()
	first := storetest.NewPresence("c1", "n1", 1)
	second := storetest.NewPresence("c1", "n2", 2)
	third := storetest.NewPresence("c1", "n3", 3)
	for _, p := range []store.Presence{first, second, third} {
		if _, err := s.Connect(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	key := clientTag(cfg.Prefix, "c1") + "t"
	list, err := raw.LRange(ctx, key, 0, -1).Result()
	if err != nil || len(list) != 8 {
		t.Fatalf("takeovers = %q, %v; want two", list, err)
	}
	res, err := s.Connect(ctx, third)
	if err != nil {
		t.Fatal(err)
	}
	if res.Prev.Session != second.Session || res.Prev.Node != "n2" || len(res.Pending) != 1 ||
		res.Pending[0].Session != first.Session {
		t.Fatalf("repeated connect reported %+v, want the second presence and the first pending", res)
	}
	if again, err := raw.LRange(ctx, key, 0, -1).Result(); err != nil || !slices.Equal(again, list) {
		t.Fatalf("takeovers after the repeat = %q, %v; want %q", again, err, list)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	addr := shared.Redis(t).Addr
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := redisstore.New(ctx, testConfig(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	appendOne(t, s, 10, storetest.NewMessage("c1", "m"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
