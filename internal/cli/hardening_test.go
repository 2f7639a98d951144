package cli_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestNodeRefusesOpenInternalChannel: a node told to listen for routers off loopback with
// neither a cluster token nor mutual TLS refuses at once (before it binds or dials
// anything: the backends here do not exist), naming the flags that fix it.
func TestNodeRefusesOpenInternalChannel(t *testing.T) {
	dead := testenv.RefusedAddrs(t, 2)
	for _, internal := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		code, _, errOut := run(t, 10*time.Second, "node", "--id", "n1", "--allow-anonymous", "--internal", internal,
			"--mqtt", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--zk", dead[0], "--redis", dead[1])
		if code != 2 {
			t.Fatalf("--internal %s: exit %d, want 2; stderr %q", internal, code, errOut)
		}
		for _, w := range []string{"--internal", "--cluster-token-file", "--internal-cert", "--internal-ca"} {
			if !strings.Contains(errOut, w) {
				t.Fatalf("--internal %s: %q does not name %s", internal, errOut, w)
			}
		}
	}
	// TLS without --internal-ca encrypts but requires no client certificate: still refused.
	certs := testenv.GenerateCerts(t)
	code, _, errOut := run(t, 10*time.Second, "node", "--id", "n1", "--allow-anonymous", "--internal", "0.0.0.0:0",
		"--internal-cert", certs.ServerCert, "--internal-key", certs.ServerKey,
		"--mqtt", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--zk", dead[0], "--redis", dead[1])
	if code != 2 || !strings.Contains(errOut, "--internal-ca") {
		t.Fatalf("TLS without a client CA: exit %d, stderr %q; want 2 naming --internal-ca", code, errOut)
	}
}

// TestNodeRefusesOpenPprof: --pprof on an admin address off loopback without a token is
// refused, naming --admin-token-file.
func TestNodeRefusesOpenPprof(t *testing.T) {
	dead := testenv.RefusedAddrs(t, 2)
	code, _, errOut := run(t, 10*time.Second, "node", "--id", "n1", "--allow-anonymous", "--pprof", "--admin", "0.0.0.0:0",
		"--mqtt", "127.0.0.1:0", "--internal", "127.0.0.1:0", "--zk", dead[0], "--redis", dead[1])
	if code != 2 || !strings.Contains(errOut, "--pprof") || !strings.Contains(errOut, "--admin-token-file") {
		t.Fatalf("exit %d, stderr %q; want 2 naming --pprof and --admin-token-file", code, errOut)
	}
}

// TestRouterHTTPLimitFlags: the router's connection limits are checked before it connects
// anywhere, and each refusal names its flag.
func TestRouterHTTPLimitFlags(t *testing.T) {
	dead := testenv.RefusedAddrs(t, 2)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--write-timeout", "5s"}, []string{"--write-timeout", "--max-max-wait", "--answer-grace"}},
		{[]string{"--read-timeout", "0s"}, []string{"--read-timeout"}},
		{[]string{"--idle-timeout", "-1s"}, []string{"--idle-timeout"}},
		{[]string{"--read-header-timeout", "1m"}, []string{"--read-header-timeout", "--read-timeout"}},
		{[]string{"--max-connections", "0"}, []string{"--max-connections"}},
	} {
		args := append([]string{"router", "--no-auth", "--listen", "127.0.0.1:0", "--zk", dead[0], "--redis", dead[1]}, tc.args...)
		code, _, errOut := run(t, 10*time.Second, args...)
		if code != 2 {
			t.Fatalf("%v: exit %d, want 2; stderr %q", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Fatalf("%v: %q does not name %s", tc.args, errOut, w)
			}
		}
	}
}
