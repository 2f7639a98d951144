package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/internal/tlsconf"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
)

// TestTLS: against a Redis that speaks only TLS, the store works with a TLS configuration
// and is refused without one.
func TestTLS(t *testing.T) {
	certs := testenv.GenerateCerts(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := backends.StartRedis(ctx, backends.RedisConfig{Dir: t.TempDir(),
		TLSCert: certs.ServerCert, TLSKey: certs.ServerKey, TLSCA: certs.CA})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	clientTLS, err := tlsconf.Client(certs.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := redisstore.DefaultConfig()
	cfg.Addr, cfg.TLS, cfg.DialTimeout = r.Addr, clientTLS, 2*time.Second
	s, err := redisstore.New(ctx, cfg)
	if err != nil {
		t.Fatalf("TLS store: %v", err)
	}
	defer s.Close()
	m := store.Message{ID: "m1", To: "c", Topic: "inbox/c", Accepted: time.Now(), TTL: time.Hour}
	if res, err := s.Append(ctx, 10, []store.Message{m}); err != nil || res[0].Err != nil {
		t.Fatalf("append over TLS: %+v, %v", res, err)
	}
	if msgs, err := s.Peek(ctx, "c", 0, 10); err != nil || len(msgs) != 1 || msgs[0].ID != "m1" {
		t.Fatalf("peek over TLS: %v, %v", msgs, err)
	}
	cfg.TLS = nil
	if _, err := redisstore.New(ctx, cfg); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("plain connection to a TLS-only Redis: %v, want ErrUnavailable", err)
	}
}
