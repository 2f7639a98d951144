package node_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/switchboard-mqtt/switchboard/node"
)

// TestEdgeConfigValidate: the WebSocket listeners and the PROXY protocol are off by
// default; WSSAddr needs a certificate, ProxyProtocol trusted sources, and a bad address
// is refused naming its field.
func TestEdgeConfigValidate(t *testing.T) {
	t.Parallel()
	base := node.DefaultConfig()
	base.ID = "n1"
	base.Auth = anonymous(t)
	if base.WSAddr != "" || base.WSSAddr != "" || base.ProxyProtocol || base.ProxyTrusted != nil {
		t.Fatalf("defaults: ws %q wss %q proxy %v %v", base.WSAddr, base.WSSAddr, base.ProxyProtocol, base.ProxyTrusted)
	}
	for _, tc := range []struct {
		name string
		set  func(*node.Config)
		want string
	}{
		{"ws address", func(c *node.Config) { c.WSAddr = "nope" }, "WSAddr"},
		{"wss without a certificate", func(c *node.Config) { c.WSSAddr = "127.0.0.1:8084" }, "WSTLS"},
		{"proxy without trusted sources", func(c *node.Config) { c.ProxyProtocol = true }, "ProxyTrusted"},
	} {
		cfg := base
		tc.set(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
	ok := base
	ok.WSAddr = "127.0.0.1:8083"
	ok.ProxyProtocol, ok.ProxyTrusted = true, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}
