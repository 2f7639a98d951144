package node_test

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/switchboard-mqtt/switchboard/node"
)

// TestConfigRefusesExposure: an internal channel off loopback needs a cluster token or
// mutual TLS, pprof off loopback needs an admin token, and each refusal names the config
// fields that fix it (the CLI names their flags); loopback needs neither.
func TestConfigRefusesExposure(t *testing.T) {
	t.Parallel()
	base := node.DefaultConfig()
	base.ID = "n1"
	base.Auth = anonymous(t)
	mtls := &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: x509.NewCertPool()}
	serverOnly := &tls.Config{} // TLS without client certificates: encrypted, not authenticated
	const token = "0123456789abcdef-admin"
	for _, tc := range []struct {
		name string
		set  func(*node.Config)
		want []string // nil: accepted
	}{
		{"internal loopback v4", func(c *node.Config) { c.InternalAddr = "127.0.0.1:7883" }, nil},
		{"internal loopback 127/8", func(c *node.Config) { c.InternalAddr = "127.3.4.5:7883" }, nil},
		{"internal loopback v6", func(c *node.Config) { c.InternalAddr = "[::1]:7883" }, nil},
		{"internal localhost", func(c *node.Config) { c.InternalAddr = "localhost:7883" }, nil},
		{"internal all interfaces", func(c *node.Config) { c.InternalAddr = ":7883" },
			[]string{"InternalAddr", `":7883"`, "WireToken", "InternalTLS"}},
		{"internal 0.0.0.0", func(c *node.Config) { c.InternalAddr = "0.0.0.0:7883" }, []string{"InternalAddr", "0.0.0.0", "WireToken"}},
		{"internal [::]", func(c *node.Config) { c.InternalAddr = "[::]:7883" }, []string{"InternalAddr", "WireToken"}},
		{"internal LAN address", func(c *node.Config) { c.InternalAddr = "10.0.0.5:7883" }, []string{"InternalAddr", "10.0.0.5", "InternalTLS"}},
		{"internal host name", func(c *node.Config) { c.InternalAddr = "node-1.example:7883" }, []string{"InternalAddr", "node-1.example"}},
		{"internal TLS without client CA", func(c *node.Config) { c.InternalAddr = "10.0.0.5:7883"; c.InternalTLS = serverOnly },
			[]string{"InternalAddr", "InternalTLS"}},
		{"internal with token", func(c *node.Config) { c.InternalAddr = "10.0.0.5:7883"; c.WireToken = "cluster-secret-0123" }, nil},
		{"internal with mutual TLS", func(c *node.Config) { c.InternalAddr = "10.0.0.5:7883"; c.InternalTLS = mtls }, nil},
		{"pprof loopback", func(c *node.Config) { c.Pprof = true }, nil},
		{"pprof off, admin anywhere", func(c *node.Config) { c.AdminAddr = ":9883" }, nil},
		{"pprof on all interfaces", func(c *node.Config) { c.Pprof = true; c.AdminAddr = ":9883" },
			[]string{"Pprof", "AdminAddr", `":9883"`, "AdminToken"}},
		{"pprof with token", func(c *node.Config) { c.Pprof = true; c.AdminAddr = ":9883"; c.AdminToken = token }, nil},
		{"short admin token", func(c *node.Config) { c.Pprof = true; c.AdminToken = "short" }, []string{"AdminToken", "5 characters", "16"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.set(&cfg)
			err := cfg.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not contain %q", err, w)
				}
			}
			if cfg.AdminToken != "" && strings.Contains(err.Error(), cfg.AdminToken) {
				t.Fatalf("error %q shows the admin token", err)
			}
		})
	}
}
