package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// refusingAddr is a loopback address nothing listens on.
func refusingAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentAddr is a loopback address that accepts connections and never answers, like a
// frozen server.
func silentAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func TestNewUnreachable(t *testing.T) {
	for _, c := range []struct {
		name string
		addr func(*testing.T) string
	}{{"Refused", refusingAddr}, {"Silent", silentAddr}} {
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
// while it is down, and after a restart the store works again with the mailboxes intact
// (the server runs with appendonly yes, and a SIGTERM writes the file).
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
		m := storetest.NewMessage("c1", fmt.Sprint("m", i))
		sent = append(sent, m)
		if _, err := s.Append(ctx, m, 10); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}

	ops := map[string]func(context.Context) error{
		"Ping": s.Ping,
		"Append": func(ctx context.Context) error {
			_, err := s.Append(ctx, storetest.NewMessage("c1", "down"), 10)
			return err
		},
		"Peek":   func(ctx context.Context) error { _, err := s.Peek(ctx, "c1", 10); return err },
		"Ack":    func(ctx context.Context) error { _, err := s.Ack(ctx, "c1", p.Session, []string{"m0"}); return err },
		"Depth":  func(ctx context.Context) error { _, err := s.Depth(ctx, "c1"); return err },
		"Lookup": func(ctx context.Context) error { _, _, err := s.Lookup(ctx, "c1"); return err },
		"Connect": func(ctx context.Context) error {
			_, err := s.Connect(ctx, storetest.NewPresence("c2", "n1", 1))
			return err
		},
		"Reassert":   func(ctx context.Context) error { return s.Reassert(ctx, "c1", p.Session, 2) },
		"Disconnect": func(ctx context.Context) error { _, err := s.Disconnect(ctx, "c1", p.Session); return err },
		"ClearNode":  func(ctx context.Context) error { _, err := s.ClearNode(ctx, "n1", 1); return err },
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

	got, err := s.Peek(ctx, "c1", 10)
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
	if res, err := s.Append(ctx, storetest.NewMessage("c1", "after"), 10); err != nil || res.Depth != 4 {
		t.Fatalf("append after restart = %+v, %v; want depth 4", res, err)
	}
	if left, err := s.Ack(ctx, "c1", p.Session, []string{"m0"}); err != nil || left != 3 {
		t.Fatalf("ack after restart = %d, %v; want 3", left, err)
	}
	if n, err := s.ClearNode(ctx, "n1", 1); err != nil || n != 1 {
		t.Fatalf("ClearNode after restart = %d, %v; want 1", n, err)
	}
}

// TestStoreFull fills a Redis capped at 2 MB (maxmemory-policy noeviction): the refused
// append wraps ErrStoreFull, every earlier message is still there, and reads and acks,
// which free memory, still work.
func TestStoreFull(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	r, err := backends.StartRedis(ctx, backends.RedisConfig{Dir: t.TempDir(), MaxMemory: "2mb"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	s := open(t, testConfig(t, r.Addr))
	p := storetest.NewPresence("c1", "n1", 1)
	if _, err := s.Connect(ctx, p); err != nil {
		t.Fatal(err)
	}

	payload := make([]byte, 64<<10)
	var sent []string
	var full error
	for i := 0; i < 1000 && full == nil; i++ {
		m := storetest.NewMessage("c1", fmt.Sprint("m", i))
		payload[0] = byte(i)
		m.Payload = payload
		if _, err := s.Append(ctx, m, 10000); err != nil {
			full = err
			break
		}
		sent = append(sent, m.ID)
	}
	if !errors.Is(full, store.ErrStoreFull) {
		t.Fatalf("after %d appends: %v; want ErrStoreFull", len(sent), full)
	}
	t.Logf("full after %d appends: %v", len(sent), full)

	depth, err := s.Depth(ctx, "c1")
	if err != nil || depth != len(sent) {
		t.Fatalf("depth = %d, %v; want %d", depth, err, len(sent))
	}
	got, err := s.Peek(ctx, "c1", 1000)
	if err != nil {
		t.Fatalf("peek in a full store: %v", err)
	}
	if len(got) != len(sent) {
		t.Fatalf("peek returned %d messages, want %d", len(got), len(sent))
	}
	for i, m := range got {
		if m.ID != sent[i] || len(m.Payload) != len(payload) || m.Payload[0] != byte(i) {
			t.Fatalf("message %d: id %s, %d bytes; want %s", i, m.ID, len(m.Payload), sent[i])
		}
	}
	left, err := s.Ack(ctx, "c1", p.Session, sent[:4])
	if err != nil || left != len(sent)-4 {
		t.Fatalf("ack in a full store = %d, %v; want %d", left, err, len(sent)-4)
	}
	if _, err := s.Append(ctx, storetest.NewMessage("c1", "room-again"), 10000); err != nil {
		t.Fatalf("append after acks freed memory: %v", err)
	}
}
