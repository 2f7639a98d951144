package node_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/node"
)

// TestPreauthLimitsValidate: the pre-authentication limits are finite by default, and a
// bad one is refused naming it, first, and its value.
func TestPreauthLimitsValidate(t *testing.T) {
	t.Parallel()
	base := node.DefaultConfig()
	base.ID = "n1"
	base.Auth = anonymous(t)
	l := base.Limits
	if l.ConnectTimeout != 10*time.Second || l.MaxConnectSize != 64<<10 || l.MaxPending != 1000 ||
		l.MaxPendingPerIP != 100 || l.AuthConcurrency != max(1, runtime.GOMAXPROCS(0)/2) ||
		l.AuthWait != 2*time.Second || l.AuthFailuresPerIP != 10 {
		t.Fatalf("defaults %+v", l)
	}
	for _, tc := range []struct {
		name string
		set  func(*node.Limits)
		want []string
	}{
		{"Limits.ConnectTimeout", func(l *node.Limits) { l.ConnectTimeout = 0 }, []string{`"0s"`}},
		{"Limits.MaxConnectSize", func(l *node.Limits) { l.MaxConnectSize = 100 }, []string{`"100"`}},
		{"Limits.MaxPending", func(l *node.Limits) { l.MaxPending = 0 }, []string{`"0"`}},
		{"Limits.MaxPendingPerIP", func(l *node.Limits) { l.MaxPendingPerIP = -1 }, []string{`"-1"`}},
		{"Limits.AuthConcurrency", func(l *node.Limits) { l.AuthConcurrency = 0 }, []string{`"0"`}},
		{"Limits.AuthWait", func(l *node.Limits) { l.AuthWait = -time.Second }, []string{`"-1s"`}},
		{"Limits.AuthFailuresPerIP", func(l *node.Limits) { l.AuthFailuresPerIP = -2 }, []string{`"-2"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.set(&cfg.Limits)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			if !strings.HasPrefix(err.Error(), tc.name+" ") {
				t.Fatalf("error %q does not name %q first", err, tc.name)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// Off is a choice for the per-address bounds.
	cfg := base
	cfg.Limits.MaxPendingPerIP, cfg.Limits.AuthFailuresPerIP = 0, 0
	if err := cfg.Validate(); err != nil {
		t.Fatalf("per-address bounds off: %v", err)
	}
}
