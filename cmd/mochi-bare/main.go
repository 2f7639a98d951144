// Command mochi-bare is a plain mochi-mqtt broker with mochi's default options (and a hook
// that admits every client, as mochi's auth.AllowHook does), for comparing Switchboard's nodes with the broker they are built on.
// It listens on loopback by default and serves /metrics (Go runtime and process metrics)
// and /debug/pprof on --admin, as a node does, so `switchboard bench connect --admin` reads
// its memory the same way.
//
//	mochi-bare --mqtt 127.0.0.1:1883 --admin 127.0.0.1:9883
//
// It prints "mqtt ADDR" and "admin ADDR" once listening (useful with port 0) and stops on
// SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mochi-bare:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mochi-bare", flag.ContinueOnError)
	addr := fs.String("mqtt", "127.0.0.1:1883", "MQTT listen address")
	admin := fs.String("admin", "", "HTTP address for /metrics and /debug/pprof (empty: none)")
	level := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *level)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("--mqtt %s: %w", *addr, err)
	}
	srv := mqtt.New(&mqtt.Options{Logger: log})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return err
	}
	if err := srv.AddListener(listeners.NewNet("mqtt", l)); err != nil {
		return err
	}
	if err := srv.Serve(); err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("mqtt %s\n", l.Addr())

	if *admin != "" {
		al, err := net.Listen("tcp", *admin)
		if err != nil {
			return fmt.Errorf("--admin %s: %w", *admin, err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = hs.Serve(al) }()
		defer hs.Close()
		fmt.Printf("admin %s\n", al.Addr())
	}
	<-ctx.Done()
	return nil
}

// allowAll admits every client and allows every topic: mochi refuses everything without
// an auth hook. (mochi's own auth.AllowHook would pull in a YAML library for its ledger.)
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
