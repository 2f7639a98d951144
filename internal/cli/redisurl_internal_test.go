package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
)

// TestRedisURL: --redis takes host:port or a redis:// / rediss:// URL, as redis-cli and
// go-redis do; the user, password and database come from the URL, rediss:// turns TLS on.
func TestRedisURL(t *testing.T) {
	for _, tc := range []struct {
		name, addr, password string // password: from --redis-password(-file)
		tlsFlags             bool
		wantAddr, wantUser   string
		wantPassword         string
		wantDB               int
		wantTLS              bool
		wantErr              string
	}{
		{name: "host:port", addr: "redis:6379", wantAddr: "redis:6379"},
		{name: "plain URL", addr: "redis://redis:6380", wantAddr: "redis:6380"},
		{name: "default port", addr: "redis://redis", wantAddr: "redis:6379"},
		{name: "user, password, db", addr: "redis://app:hunter2@redis:6380/3", wantAddr: "redis:6380",
			wantUser: "app", wantPassword: "hunter2", wantDB: 3},
		{name: "password only", addr: "redis://:hunter2@redis:6380", wantAddr: "redis:6380", wantPassword: "hunter2"},
		{name: "password from its flag", addr: "redis://redis:6380/1", password: "pw", wantAddr: "redis:6380", wantPassword: "pw", wantDB: 1},
		{name: "TLS", addr: "rediss://redis.example:6380", wantAddr: "redis.example:6380", wantTLS: true},
		{name: "TLS with the CA flags", addr: "rediss://redis.example:6380", tlsFlags: true, wantAddr: "redis.example:6380", wantTLS: true},
		{name: "IPv6", addr: "redis://[::1]:6380", wantAddr: "[::1]:6380"},
		{name: "two passwords", addr: "redis://:hunter2@redis:6380", password: "pw", wantErr: "give one"},
		{name: "options", addr: "redis://:hunter2@redis:6380?dial_timeout=1s", wantErr: "options in the URL are not taken"},
		{name: "scheme", addr: "unix://:hunter2@/tmp/redis.sock", wantErr: "want host:port or a redis:// or rediss:// URL"},
		{name: "bad db", addr: "redis://:hunter2@redis:6380/x", wantErr: "--redis"},
		{name: "not a URL", addr: "redis://:hun%zzter2@redis", wantErr: "not a valid redis:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := redisstore.DefaultConfig()
			cfg.Addr, cfg.Password = tc.addr, tc.password
			if tc.tlsFlags {
				cfg.TLS = &tls.Config{} // what --redis-tls-ca builds, without a server name
			}
			err := applyRedisURL(&cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "hun%zzter2") {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Addr != tc.wantAddr || cfg.Username != tc.wantUser || cfg.Password != tc.wantPassword || cfg.DB != tc.wantDB {
				t.Fatalf("got addr %q user %q password %q db %d", cfg.Addr, cfg.Username, cfg.Password, cfg.DB)
			}
			if (cfg.TLS != nil) != tc.wantTLS {
				t.Fatalf("TLS %v, want %v", cfg.TLS != nil, tc.wantTLS)
			}
			if tc.wantTLS && (cfg.TLS.ServerName != "redis.example" || cfg.TLS.MinVersion < tls.VersionTLS12) {
				t.Fatalf("TLS server name %q, min version %x", cfg.TLS.ServerName, cfg.TLS.MinVersion)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("the store refuses the result: %v", err)
			}
		})
	}
}

// TestRedisURLPasswordWarning: a password in a --redis URL on the command line is warned
// about as a secret flag is, without showing it; from the environment it is not, and the
// flag prints itself redacted (-h, config check).
func TestRedisURLPasswordWarning(t *testing.T) {
	const url = "redis://app:hunter2@redis:6380/0"
	newSet := func() (*flag.FlagSet, *redisOptions) {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var o redisOptions
		o.register(fs)
		return fs, &o
	}
	fs, o := newSet()
	if err := parse(fs, []string{"--redis", url}); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	warnSecrets(fs, slog.New(slog.NewTextHandler(&logged, nil)))
	if !strings.Contains(logged.String(), "--redis was given on the command line with a password in its URL") ||
		!strings.Contains(logged.String(), "--redis-password-file") || strings.Contains(logged.String(), "hunter2") {
		t.Fatalf("warning: %q", logged.String())
	}
	if o.addr != url {
		t.Fatalf("addr %q", o.addr)
	}
	if got := fs.Lookup("redis").Value.String(); got != "redis://app:xxxxx@redis:6380/0" {
		t.Fatalf("the flag prints %q", got)
	}

	t.Setenv("SWITCHBOARD_REDIS", url)
	fs, _ = newSet()
	if err := parse(fs, nil); err != nil {
		t.Fatal(err)
	}
	logged.Reset()
	warnSecrets(fs, slog.New(slog.NewTextHandler(&logged, nil)))
	if logged.Len() != 0 {
		t.Fatalf("warned for the environment: %q", logged.String())
	}
	// Without a password there is nothing to warn about.
	fs, _ = newSet()
	if err := parse(fs, []string{"--redis", "redis://redis:6380"}); err != nil {
		t.Fatal(err)
	}
	logged.Reset()
	warnSecrets(fs, slog.New(slog.NewTextHandler(&logged, nil)))
	if logged.Len() != 0 {
		t.Fatalf("warned for a URL without a password: %q", logged.String())
	}
}

// TestRedisURLAgainstRedis: a URL's user, password and database reach a real Redis: the
// store authenticates as the ACL user and writes into the URL's database; a wrong
// password is refused at start.
func TestRedisURLAgainstRedis(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The default user stays open so the harness can PING; "app" is an ACL user.
	r, err := backends.StartRedis(ctx, backends.RedisConfig{Dir: t.TempDir(),
		Args: []string{"--user", "app", "on", ">hunter2", "~*", "&*", "+@all"}})
	if err != nil {
		t.Fatalf("start Redis: %v", err)
	}
	t.Cleanup(func() { r.Close() })

	open := func(url string) (*redisstore.Store, error) {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var o redisOptions
		o.register(fs)
		if err := parse(fs, []string{"--redis", url}); err != nil {
			t.Fatal(err)
		}
		return o.open(ctx, slog.New(slog.DiscardHandler))
	}
	st, err := open("redis://app:hunter2@" + r.Addr + "/2")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := st.Append(ctx, 10, []store.Message{{ID: "m1", To: "bob", Topic: "inbox/bob", QoS: 1, TTL: time.Minute}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("append: %v %+v", err, res)
	}
	for db, want := range map[int]bool{2: true, 0: false} {
		c := redis.NewClient(&redis.Options{Addr: r.Addr, DB: db})
		n, err := c.DBSize(ctx).Result()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if (n > 0) != want {
			t.Errorf("db %d holds %d keys", db, n)
		}
	}
	if st, err := open("redis://app:wrong@" + r.Addr + "/2"); err == nil {
		st.Close()
		t.Fatal("a wrong password was accepted")
	} else if strings.Contains(err.Error(), "wrong@") {
		t.Fatalf("the error shows the URL's password: %v", err)
	}
}
