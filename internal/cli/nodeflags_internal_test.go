package cli

import (
	"strings"
	"testing"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/node"
)

// TestNodeErrorsNameTheFlag: the node names the Config field it refuses; what the user of
// `switchboard node` reads names the flag and the value instead.
func TestNodeErrorsNameTheFlag(t *testing.T) {
	a, err := auth.New(auth.Config{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	base := node.DefaultConfig()
	base.ID = "n1"
	base.Auth = a
	for _, tc := range []struct {
		name   string
		set    func(*node.Config)
		want   []string
		reject []string
	}{
		{"empty id", func(c *node.Config) { c.ID = "" }, []string{"--id"}, []string{"ID:"}},
		{"bad id", func(c *node.Config) { c.ID = "a/b" }, []string{"--id", `"a/b"`}, nil},
		{"mqtt no port", func(c *node.Config) { c.MQTTAddr = "localhost" }, []string{"--mqtt", `"localhost"`}, []string{"--internal", "--admin", "MQTTAddr"}},
		{"internal empty", func(c *node.Config) { c.InternalAddr = "" }, []string{"--internal"}, []string{"--mqtt", "--admin"}},
		{"admin bad host", func(c *node.Config) { c.AdminAddr = "my host:80" }, []string{"--admin", "my host"}, []string{"--mqtt", "--internal"}},
		{"advertise internal", func(c *node.Config) { c.AdvertiseInternal = "nohost" }, []string{"--advertise-internal", `"nohost"`}, nil},
		{"max keepalive", func(c *node.Config) { c.Limits.MaxKeepAlive = node.MaxServerKeepAlive + 1 }, []string{"--max-keepalive", `"43691s"`}, []string{"Limits."}},
		{"ws address", func(c *node.Config) { c.WSAddr = "nope" }, []string{"--ws", `"nope"`}, []string{"WSAddr"}},
		{"wss without a certificate", func(c *node.Config) { c.WSSAddr = "127.0.0.1:8084" },
			[]string{"--wss", "--wss-cert", "--tls-cert"}, []string{"WSSAddr", "WSTLS"}},
		{"proxy without trusted sources", func(c *node.Config) { c.ProxyProtocol = true },
			[]string{"--proxy-protocol", "--proxy-trusted"}, []string{"ProxyProtocol", "ProxyTrusted"}},
		{"internal exposed", func(c *node.Config) { c.InternalAddr = ":7883" },
			[]string{"--internal", `":7883"`, "--cluster-token-file", "--internal-cert", "--internal-key", "--internal-ca"},
			[]string{"InternalAddr", "WireToken", "InternalTLS"}},
		{"pprof exposed", func(c *node.Config) { c.Pprof = true; c.AdminAddr = ":9883" },
			[]string{"--pprof", "--admin", `":9883"`, "--admin-token-file"}, []string{"Pprof", "AdminAddr", "AdminToken"}},
		{"short admin token", func(c *node.Config) { c.AdminToken = "short" }, []string{"--admin-token-file", "5 characters"}, nil},
		{"inbox prefix", func(c *node.Config) { c.InboxPrefix = "" }, []string{"--inbox-prefix"}, []string{"InboxPrefix"}},
		// Found by a trial: these named no flag, and `config check` could not trace them to a key.
		{"window", func(c *node.Config) { c.Window = -5 }, []string{"--window", `"-5"`, "positive"}, []string{"Window", "outbox"}},
		{"mailbox limit", func(c *node.Config) { c.MailboxLimit = 0 }, []string{"--mailbox-limit", `"0"`}, []string{"drain batch"}},
		{"move rate", func(c *node.Config) { c.Quarantine.MoveRate = -1 }, []string{"--move-rate", `"-1"`}, []string{"grace"}},
		{"max wait", func(c *node.Config) { c.MaxWait = 0 }, []string{"--max-wait", `"0s"`}, nil},
		{"max clients", func(c *node.Config) { c.Limits.MaxClients = 0 }, []string{"--max-clients", `"0"`}, []string{"Limits."}},
		{"conn burst", func(c *node.Config) { c.Limits.ConnBurstPerIP = 0 }, []string{"--conn-burst"}, []string{"Limits."}},
		{"lease interval", func(c *node.Config) { c.Lease.Interval = c.Lease.Duration }, []string{"--lease and --lease-interval", "half"}, nil},
		{"fields without a flag pass through", func(c *node.Config) { c.StoreTimeout = 0 }, []string{"StoreTimeout", `"0s"`}, []string{"--"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.set(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			msg := nodeFlagError(err).Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not contain %q", msg, w)
				}
			}
			for _, r := range tc.reject {
				if strings.Contains(msg, r) {
					t.Errorf("%q contains %q", msg, r)
				}
			}
		})
	}
}

// TestMaxKeepAliveFlag: --max-keepalive takes whole seconds up to what mochi's deadline can
// hold, and a refusal names the flag and the value.
func TestMaxKeepAliveFlag(t *testing.T) {
	base := []string{"--id", "n1", "--allow-anonymous", "--zk", "127.0.0.1:1", "--redis", "127.0.0.1:2",
		"--mqtt", "127.0.0.1:0", "--internal", "127.0.0.1:0", "--admin", "127.0.0.1:0"}
	for _, ok := range []string{"0", "60s", "12h8m10s"} {
		if _, stderr, err := probeRole(t, "node", append(base, "--max-keepalive", ok)...); err != nil {
			t.Errorf("--max-keepalive %s: %v\n%s", ok, err, stderr)
		}
	}
	for _, bad := range []string{"1500ms", "-1s", "12h8m11s"} {
		_, _, err := probeRole(t, "node", append(base, "--max-keepalive", bad)...)
		if err == nil || !strings.Contains(err.Error(), "--max-keepalive") {
			t.Errorf("--max-keepalive %s: %v, want a refusal naming the flag", bad, err)
		}
	}
}
