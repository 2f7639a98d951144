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
	now := time.Now()
	if _, err := s.Append(ctx, store.Message{ID: "m1", To: "c", Topic: "inbox/c", Accepted: now, Expires: now.Add(time.Hour)}, 10); err != nil {
		t.Fatalf("append over TLS: %v", err)
	}
	cfg.TLS = nil
	if _, err := redisstore.New(ctx, cfg); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("plain connection to a TLS-only Redis: %v, want ErrUnavailable", err)
	}
}
