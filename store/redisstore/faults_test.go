package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

func TestNewUnreachable(t *testing.T) {
	for _, c := range []struct {
		name string
		addr func(testing.TB) string
	}{{"Refused", testenv.RefusedAddr}, {"Silent", testenv.SilentAddr}} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t, c.addr(t))
			cfg.DialTimeout = 500 * time.Millisecond
			start := time.Now()
			s, err := redisstore.New(t.Context(), cfg)
			took := time.Since(start)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded without a server")
			}
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("error %q does not wrap store.ErrUnavailable", err)
			}
			if !strings.Contains(err.Error(), cfg.Addr) {
				t.Errorf("error %q does not name %s", err, cfg.Addr)
			}
			if took > cfg.DialTimeout+500*time.Millisecond {
				t.Errorf("New took %v with DialTimeout %v", took, cfg.DialTimeout)
			}
			t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		})
	}
}

// TestRedisRestart stops Redis under a store: every operation fails with ErrUnavailable
// while it is down, and after a restart the store works again with the mailboxes and
// notices intact (the server runs with appendonly yes, and a SIGTERM writes the file).
func TestRedisRestart(t *testing.T) {
	r := testenv.Redis(t)
	cfg := testConfig(t, r.Addr)
	cfg.DialTimeout = 300 * time.Millisecond
	s := open(t, cfg)
	ctx := t.Context()

	p := storetest.NewPresence("c1", "n1", 1)
	if _, err := s.Connect(ctx, p); err != nil {
		t.Fatal(err)
	}
	var sent []store.Message
	for i := range 3 {
		sent = append(sent, storetest.NewMessage("c1", fmt.Sprint("m", i)))
	}
	if _, err := s.Append(ctx, 10, sent); err != nil {
		t.Fatal(err)
	}
	notice := store.Notice{Kind: store.NoticeMailbox, Client: "c1"}
	if err := s.Notify(ctx, "n1", notice); err != nil {
		t.Fatal(err)
	}
	again := p
	again.Epoch = 2
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}

	ops := map[string]func(context.Context) error{
		"Ping": s.Ping,
		"Append": func(ctx context.Context) error {
			_, err := s.Append(ctx, 10, []store.Message{storetest.NewMessage("c1", "down")})
			return err
		},
		"Peek": func(ctx context.Context) error { _, err := s.Peek(ctx, "c1", 0, 10); return err },
		"Remove": func(ctx context.Context) error {
			return s.Remove(ctx, store.Removal{Client: "c1", IDs: []string{"m0"}})
		},
		"Depth":  func(ctx context.Context) error { _, err := s.Depth(ctx, "c1"); return err },
		"Lookup": func(ctx context.Context) error { _, _, err := s.Lookup(ctx, "c1"); return err },
		"Connect": func(ctx context.Context) error {
			_, err := s.Connect(ctx, storetest.NewPresence("c2", "n1", 1))
			return err
		},
		"Reassert":        func(ctx context.Context) error { return s.Reassert(ctx, again) },
		"ConfirmTakeover": func(ctx context.Context) error { return s.ConfirmTakeover(ctx, "c1", p.Session) },
		"Disconnect":      func(ctx context.Context) error { _, err := s.Disconnect(ctx, "c1", p.Session); return err },
		"ClearNode":       func(ctx context.Context) error { _, err := s.ClearNode(ctx, "n1", 1); return err },
		"Notify":          func(ctx context.Context) error { return s.Notify(ctx, "n1", notice) },
		"TakeNotices":     func(ctx context.Context) error { _, err := s.TakeNotices(ctx, "n1", 10); return err },
		"DoneNotices":     func(ctx context.Context) error { return s.DoneNotices(ctx, "n1", math.MaxUint64) },
	}
	for name, op := range ops {
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		start := time.Now()
		err := op(octx)
		cancel()
		if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), r.Addr) {
			t.Errorf("%s while Redis is down: %v; want ErrUnavailable naming %s", name, err, r.Addr)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s took %v to fail", name, took)
		}
	}

	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := r.Start(sctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error { return s.Ping(ctx) })

	got, err := s.Peek(ctx, "c1", 0, 10)
	if err != nil {
		t.Fatalf("peek after restart: %v", err)
	}
	if len(got) != len(sent) {
		t.Fatalf("after restart the mailbox holds %d messages, want %d", len(got), len(sent))
	}
	for i := range sent {
		if got[i].ID != sent[i].ID || string(got[i].Payload) != string(sent[i].Payload) {
			t.Fatalf("after restart message %d is %+v, want %+v", i, got[i], sent[i])
		}
	}
	// The scripts are gone from the restarted server's cache; each must load again.
	res, err := s.Append(ctx, 10, []store.Message{storetest.NewMessage("c1", "after")})
	if err != nil || res[0].Err != nil || res[0].Depth != 4 || res[0].Seq <= got[2].Seq {
		t.Fatalf("append after restart = %+v, %v; want depth 4 and a seq after %d", res, err, got[2].Seq)
	}
	if err := s.Remove(ctx, store.Removal{Client: "c1", IDs: []string{"m0"}}); err != nil {
		t.Fatalf("remove after restart: %v", err)
	}
	if d, err := s.Depth(ctx, "c1"); err != nil || d != 3 {
		t.Fatalf("depth after remove = %d, %v; want 3", d, err)
	}
	ns, err := s.TakeNotices(ctx, "n1", 10)
	if err != nil || len(ns) != 1 || !sameNotice(ns[0], notice) {
		t.Fatalf("notices after restart = %v, %v; want the one sent before", ns, err)
	}
	if err := s.DoneNotices(ctx, "n1", ns[0].Seq); err != nil {
		t.Fatalf("done notices after restart: %v", err)
	}
	if ns, err := s.TakeNotices(ctx, "n1", 10); err != nil || len(ns) != 0 {
		t.Fatalf("notices after done = %v, %v; want none", ns, err)
	}
	if err := s.Reassert(ctx, again); err != nil {
		t.Fatalf("reassert after restart: %v", err)
	}
	if err := s.ConfirmTakeover(ctx, "c1", p.Session); err != nil {
		t.Fatalf("confirm takeover after restart: %v", err)
	}
	if n, err := s.ClearNode(ctx, "n1", 2); err != nil || n != 1 {
		t.Fatalf("ClearNode after restart = %d, %v; want 1", n, err)
	}
}

// TestStoreFull fills a Redis capped at 2 MB (maxmemory-policy noeviction): the refused
// append's result wraps ErrStoreFull (the call itself succeeds), every earlier message is
// still there, and what needs no memory still works: duplicates are recognised, reads,
// removals and taking notices go on, and the memory removals free takes appends again.
//
// Redis counts the requests it is reading, and its append-only buffer drains every
// second, so whether one more write fits varies a little: each refusal is sought with a
// loop of writes that grow the data, not expected of one particular write.
func TestStoreFull(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	r, err := backends.StartRedis(ctx, backends.RedisConfig{Dir: t.TempDir(), MaxMemory: "2mb"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	addr := r.Addr
	s := open(t, testConfig(t, addr))
	if _, err := s.Connect(ctx, storetest.NewPresence("c1", "n1", 1)); err != nil {
		t.Fatal(err)
	}
	notice := store.Notice{Kind: store.NoticeMailbox, Client: "c1"}
	if err := s.Notify(ctx, "n1", notice); err != nil {
		t.Fatal(err)
	}

	payload := make([]byte, 64<<10)
	n := 0
	big := func(client string) store.Message {
		n++
		m := storetest.NewMessage(client, fmt.Sprint("m", n))
		m.Payload = bytes.Clone(payload)
		m.Payload[0] = byte(n)
		return m
	}
	sent := map[string][]store.Message{}
	// fill appends batches until one of its messages is refused, and returns that
	// batch's results.
	fill := func(clients ...string) []store.AppendResult {
		t.Helper()
		for range 1000 {
			var batch []store.Message
			for _, c := range clients {
				batch = append(batch, big(c))
			}
			res, err := s.Append(ctx, 10000, batch)
			if err != nil {
				t.Fatalf("append: the call failed: %v", err)
			}
			refused := false
			for i, r := range res {
				switch {
				case r.Err == nil:
					sent[batch[i].To] = append(sent[batch[i].To], batch[i])
				case errors.Is(r.Err, store.ErrStoreFull) && strings.Contains(r.Err.Error(), addr):
					refused = true
				default:
					t.Fatalf("append %s: %v; want ErrStoreFull naming the server", batch[i].ID, r.Err)
				}
			}
			if refused {
				return res
			}
		}
		t.Fatal("a thousand batches of 64 KiB messages fit in 2 MB")
		return nil
	}
	fill("c1")
	t.Logf("full after %d messages", len(sent["c1"]))
	// A batch for two clients: the refused client's run says so in its own result.
	res := fill("c1", "c2")
	t.Logf("batch for two clients: %v; %v", res[0].Err, res[1].Err)
	// A duplicate needs no memory.
	if res, err := s.Append(ctx, 10000, sent["c1"][:1]); err != nil || !res[0].Duplicate || res[0].Err != nil {
		t.Fatalf("duplicate into a full store = %+v, %v; want Duplicate", res, err)
	}
	for i := 0; ; i++ {
		err := s.Notify(ctx, "n1", store.Notice{Kind: store.NoticeRevoke, Client: "c1", Session: string(payload)})
		if errors.Is(err, store.ErrStoreFull) {
			break
		}
		if err != nil || i == 1000 {
			t.Fatalf("notify into a full store: %v after %d notices, want ErrStoreFull", err, i)
		}
	}

	for _, c := range []string{"c1", "c2"} {
		depth, err := s.Depth(ctx, c)
		if err != nil || depth != len(sent[c]) {
			t.Fatalf("depth of %s = %d, %v; want %d", c, depth, err, len(sent[c]))
		}
		got, err := s.Peek(ctx, c, 0, 1000)
		if err != nil {
			t.Fatalf("peek in a full store: %v", err)
		}
		if len(got) != len(sent[c]) {
			t.Fatalf("peek of %s returned %d messages, want %d", c, len(got), len(sent[c]))
		}
		for i, m := range got {
			if m.ID != sent[c][i].ID || !bytes.Equal(m.Payload, sent[c][i].Payload) {
				t.Fatalf("message %d of %s: id %s, %d bytes; want %s", i, c, m.ID, len(m.Payload), sent[c][i].ID)
			}
		}
	}
	ns, err := s.TakeNotices(ctx, "n1", 10)
	if err != nil || len(ns) == 0 || !sameNotice(ns[0], notice) {
		t.Fatalf("take notices in a full store = %d notices, %v; want the first one first", len(ns), err)
	}
	// Confirming notices needs no memory.
	if err := s.DoneNotices(ctx, "n1", ns[0].Seq); err != nil {
		t.Fatalf("done notices in a full store: %v", err)
	}
	if rest, err := s.TakeNotices(ctx, "n1", 10); err != nil || (len(rest) > 0 && rest[0].Seq <= ns[0].Seq) {
		t.Fatalf("take after done in a full store = %v, %v; want the confirmed one gone", rest, err)
	}
	var ids []string
	for _, m := range sent["c1"][:4] {
		ids = append(ids, m.ID)
	}
	if err := s.Remove(ctx, store.Removal{Client: "c1", IDs: ids}); err != nil {
		t.Fatalf("remove in a full store: %v", err)
	}
	if d, err := s.Depth(ctx, "c1"); err != nil || d != len(sent["c1"])-4 {
		t.Fatalf("depth after remove = %d, %v; want %d", d, err, len(sent["c1"])-4)
	}
	res, err = s.Append(ctx, 10000, []store.Message{storetest.NewMessage("c1", "room-again")})
	if err != nil || res[0].Err != nil {
		t.Fatalf("append after removals freed memory: %+v, %v", res, err)
	}
}
