// Package etcdembed runs a single etcd member inside this process, for `switchboard up` and
// the etcd backend's tests. It is apart from coord/etcdcoord so that the backend, like the
// ZooKeeper one, links only its client library, not etcd's server.
package etcdembed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/switchboard-mqtt/switchboard/internal/zapslog"
)

// Server is a single-member etcd running inside this process: its data lives in a
// directory, and it listens on 127.0.0.1 only.
type Server struct {
	etcd     *embed.Etcd
	client   *clientv3.Client
	endpoint string
	once     sync.Once
	closing  *atomic.Bool // Close began: see closingHandler
}

// closingHandler writes the member's records, those of its shutdown at debug: as Close
// stops it, etcd logs an error for each of its listeners ("setting up serving from embedded
// etcd failed", "http: Server closed"), four on every stop of `up` and before the real
// error of a start that failed after etcd was up.
type closingHandler struct {
	slog.Handler
	closing *atomic.Bool
}

func (h closingHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.closing.Load() && r.Level > slog.LevelDebug {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h closingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return closingHandler{h.Handler.WithAttrs(as), h.closing}
}

func (h closingHandler) WithGroup(name string) slog.Handler {
	return closingHandler{h.Handler.WithGroup(name), h.closing}
}

// portFile remembers the ports an embedded etcd used, so a restart on the same data
// directory listens where its stored membership says it does.
type portFile struct {
	Client int `json:"client"`
	Peer   int `json:"peer"`
}

// Start starts (or restarts, with the same data) an etcd member in dir and returns
// once it serves, with a client connected to it. The member's logs go to log: its errors
// at error, the rest at debug. etcd ends the process on some failures (a write to its
// database refused for lack of disk, say), and the line it writes first is all that says
// why.
func Start(ctx context.Context, dir string, log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	ports, err := loadPorts(dir)
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = "switchboard-up"
	cfg.Dir = filepath.Join(dir, "data")
	cu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports.Client)}
	pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports.Peer)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.EnableGRPCGateway = false
	closing := new(atomic.Bool)
	serverLog := slog.New(closingHandler{log.Handler(), closing}).With("source", "etcd-server")
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapslog.New(serverLog, slog.LevelError))
	e, err := startEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w", dir, err)
	case <-ctx.Done():
		closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: not ready: %w", dir, ctx.Err())
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{cu.Host}, Logger: zapslog.New(log.With("source", "etcd-client"), slog.LevelWarn)})
	if err != nil {
		closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("embedded etcd client: %w", err)
	}
	return &Server{etcd: e, client: client, endpoint: cu.Host, closing: closing}, nil
}

// startEtcd is embed.StartEtcd with its panics as errors: etcd panics as it starts on some
// failures of its data directory (a WAL it cannot create on a full disk), after logging
// why.
func startEtcd(cfg *embed.Config) (e *embed.Etcd, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v (the etcd-server line logged before says why)", r)
		}
	}()
	return embed.StartEtcd(cfg)
}

// loadPorts reads the ports a previous run used, or picks free ones and records them.
func loadPorts(dir string) (portFile, error) {
	path := filepath.Join(dir, "ports.json")
	var p portFile
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &p); err != nil || p.Client == 0 || p.Peer == 0 {
			return p, fmt.Errorf("embedded etcd: %s is damaged; remove the data directory to start afresh", path)
		}
		for _, port := range []int{p.Client, p.Peer} {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return p, fmt.Errorf("embedded etcd: port %d (recorded in %s) is in use: %w", port, path, err)
			}
			l.Close()
		}
		return p, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return p, fmt.Errorf("embedded etcd: %w", err)
	}
	var ls [2]net.Listener
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return p, fmt.Errorf("embedded etcd: choose a port: %w", err)
		}
		defer l.Close()
		ls[i] = l
	}
	p = portFile{Client: ls[0].Addr().(*net.TCPAddr).Port, Peer: ls[1].Addr().(*net.TCPAddr).Port}
	b, _ := json.Marshal(p)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return p, fmt.Errorf("embedded etcd: %w", err)
	}
	return p, nil
}

// Client is a client of the embedded member; pass it in etcdcoord.Config.Client. It stays open until
// Close.
func (e *Server) Client() *clientv3.Client { return e.client }

// Endpoint is the member's client address (127.0.0.1:port).
func (e *Server) Endpoint() string { return e.endpoint }

// Close closes the client and stops the member, flushing its data. Idempotent.
func (e *Server) Close() error {
	e.once.Do(func() {
		e.closing.Store(true)
		e.client.Close()
		e.etcd.Close()
	})
	return nil
}
