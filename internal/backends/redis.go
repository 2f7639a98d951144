package backends

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RedisConfig says how to run a Redis server on this machine.
type RedisConfig struct {
	// Dir holds the server's data (append-only file) and log. Required.
	Dir string
	// MaxMemory caps the server's memory, e.g. "256mb"; empty means no cap.
	MaxMemory string
	// TLSCert and TLSKey, when set, make the server listen for TLS only (with TLSCA
	// trusted for client certificates, which are then optional).
	TLSCert, TLSKey, TLSCA string
	// Port is the port to listen on; 0 means a free one.
	Port int
	// Args are more redis-server arguments ("--replicaof", "127.0.0.1 6379", ...), after
	// the defaults, so they override them.
	Args []string
}

// Redis is a running redis-server on 127.0.0.1.
type Redis struct {
	Addr string
	proc *process
	tls  *tls.Config // the client side, when the server speaks TLS only
}

// StartRedis starts redis-server on a free port and returns once it answers PING.
//
// It runs with appendonly yes / appendfsync everysec, so mailboxes survive a restart, and
// maxmemory-policy noeviction: with any eviction policy Redis silently deletes keys (whole
// mailboxes) under memory pressure, while noeviction turns a full Redis into a write error
// that Switchboard reports to the sender.
func StartRedis(ctx context.Context, cfg RedisConfig) (*Redis, error) {
	if cfg.Dir == "" {
		return nil, errors.New("redis: Dir is required")
	}
	if err := EnsureInstalled(ctx); err != nil {
		return nil, err
	}
	r, err := newRedis(cfg)
	if err != nil {
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// newRedis makes cfg.Dir absolute and creates it, chooses the port when cfg.Port is 0 and
// returns the server's command line, not started. redis-server runs in its Dir and reads
// --dir from there, so the path it is given is absolute.
func newRedis(cfg RedisConfig) (*Redis, error) {
	dir, err := absDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	cfg.Dir = dir
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	ports := []int{cfg.Port}
	if cfg.Port == 0 {
		var err error
		if ports, err = FreePorts(1); err != nil {
			return nil, err
		}
	}
	argv := []string{"redis-server", "--bind", "127.0.0.1"}
	var tlsCfg *tls.Config
	if cfg.TLSCert != "" {
		argv = append(argv, "--port", "0", "--tls-port", strconv.Itoa(ports[0]),
			"--tls-cert-file", cfg.TLSCert, "--tls-key-file", cfg.TLSKey,
			"--tls-ca-cert-file", cfg.TLSCA, "--tls-auth-clients", "optional")
		pem, err := os.ReadFile(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	} else {
		argv = append(argv, "--port", strconv.Itoa(ports[0]))
	}
	argv = append(argv,
		"--dir", cfg.Dir,
		"--save", "",
		"--appendonly", "yes",
		"--appendfsync", "everysec",
		"--maxmemory-policy", "noeviction",
		"--protected-mode", "yes",
		"--daemonize", "no",
	)
	if cfg.MaxMemory != "" {
		argv = append(argv, "--maxmemory", cfg.MaxMemory)
	}
	argv = append(argv, cfg.Args...)
	r := &Redis{
		Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		tls:  tlsCfg,
		proc: &process{name: "redis", argv: argv, dir: cfg.Dir, logPath: filepath.Join(cfg.Dir, "redis.log")},
	}
	return r, nil
}

// Start starts a stopped server again on the same port and data directory, and waits for it.
func (r *Redis) Start(ctx context.Context) error {
	if err := r.proc.start(); err != nil {
		return err
	}
	for {
		if err := ping(ctx, r.Addr, r.tls); err == nil {
			return nil
		}
		select {
		case <-r.proc.exited():
			return fmt.Errorf("redis exited at start; see %s", r.proc.logPath)
		case <-ctx.Done():
			_ = r.proc.stop(true, time.Second)
			return fmt.Errorf("redis at %s did not answer PING: %w", r.Addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop stops the server (SIGTERM, which writes the append-only file) and waits for it.
func (r *Redis) Stop() error { return r.proc.stop(false, 10*time.Second) }

// Kill stops the server with SIGKILL and waits for it.
func (r *Redis) Kill() error { return r.proc.stop(true, 10*time.Second) }

// Pause freezes the server (SIGSTOP).
func (r *Redis) Pause() error { return r.proc.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (r *Redis) Resume() error { return r.proc.signal(syscall.SIGCONT) }

// Close stops the server.
func (r *Redis) Close() error { return r.Kill() }

// Running reports whether the server process is up.
func (r *Redis) Running() bool { return r.proc.running() }

// LogPath is the server's log file.
func (r *Redis) LogPath() string { return r.proc.logPath }

// Ping sends PING over the Redis protocol and expects +PONG.
func Ping(ctx context.Context, addr string) error { return ping(ctx, addr, nil) }

func ping(ctx context.Context, addr string, tlsCfg *tls.Config) error {
	var conn net.Conn
	var err error
	if tlsCfg != nil {
		d := tls.Dialer{Config: tlsCfg}
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis %s answered %q", addr, strings.TrimSpace(line))
	}
	return nil
}
