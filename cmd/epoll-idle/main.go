//go:build linux

// Command epoll-idle is a prototype for the connection-scale evaluation in
// docs/BENCHMARKS.md, not part of Switchboard: it serves idle MQTT connections from one
// event loop (epoll, one goroutine for all of them) instead of mochi's two goroutines per
// connection, to measure what an idle connection costs without goroutine stacks. It speaks
// just enough MQTT 3.1.1 and 5 for `switchboard bench connect`: CONNECT (answered
// accepted), SUBSCRIBE (QoS 0 and 1 granted), UNSUBSCRIBE, PINGREQ, QoS 0/1 PUBLISH
// (acknowledged, not routed), PUBACK and DISCONNECT; keep-alive is enforced (1.5×, as
// MQTT says) and a CONNECT must come within 10 s. No authentication, no sessions, no
// routing, no TLS.
//
//	epoll-idle --mqtt 127.0.0.1:1883 --admin 127.0.0.1:9883
//
// It serves /metrics and /debug/pprof on --admin as mochi-bare does, prints "mqtt ADDR"
// once listening and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "epoll-idle:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("epoll-idle", flag.ContinueOnError)
	addr := fs.String("mqtt", "127.0.0.1:1883", "MQTT listen address")
	admin := fs.String("admin", "", "HTTP address for /metrics and /debug/pprof (empty: none)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	s, err := listen(*addr)
	if err != nil {
		return fmt.Errorf("--mqtt %s: %w", *addr, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.serve() }()
	fmt.Printf("mqtt %s\n", s.addr)
	if *admin != "" {
		al, err := net.Listen("tcp", *admin)
		if err != nil {
			s.close()
			return fmt.Errorf("--admin %s: %w", *admin, err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = hs.Serve(al) }()
		defer hs.Close()
		fmt.Printf("admin %s\n", al.Addr())
	}
	select {
	case <-ctx.Done():
		s.close()
		return <-done
	case err := <-done:
		return err
	}
}
