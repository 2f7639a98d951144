package node

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/bearer"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/healthz"
)

// adminHandler serves adminMux once started is set. Before, while the node registers,
// /healthz answers 503 with the node's id and instance in state "registering", and every
// other endpoint 503.
func (n *Node) adminHandler(started *atomic.Bool) http.Handler {
	full := n.adminMux()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case started.Load():
			full.ServeHTTP(w, r)
		case r.Method == http.MethodGet && r.URL.Path == "/healthz":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(healthz.Report{Node: n.cfg.ID, Instance: n.instance,
				State: coord.Registering.String(), Gate: "starting", Checks: map[string]healthz.Check{}, CheckedAt: time.Now().UTC()})
		default:
			http.Error(w, "node starting", http.StatusServiceUnavailable)
		}
	})
}

// adminMux serves the node's admin endpoints: /healthz for load balancers and the monitor,
// /metrics for Prometheus, and, only when configured (Config.Pprof), /debug/pprof for
// diagnosis (a quarantined node keeps serving it), behind the admin token when one is set.
func (n *Node) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		h := n.Health()
		w.Header().Set("Content-Type", "application/json")
		if !h.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(h)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.registry, promhttp.HandlerOpts{}))
	if n.cfg.Pprof {
		pp := http.NewServeMux()
		pp.HandleFunc("/debug/pprof/", pprof.Index)
		pp.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		pp.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pp.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pp.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.Handle("/debug/pprof/", requireBearer(n.cfg.AdminToken, pp))
	}
	n.registerFailpoints(mux)
	return mux
}

// requireBearer wraps h so every request must carry Authorization: Bearer <token>; with
// an empty token (allowed only on a loopback address, see validateExposure) it is h.
func requireBearer(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		got, ok := bearer.Token(req.Header.Get("Authorization"))
		// Comparing fixed-size hashes keeps the comparison's time independent of how much
		// of the token, and of its length, a caller guessed.
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard-admin"`)
			http.Error(w, "missing or wrong admin token (Authorization: Bearer <token>)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, req)
	})
}
