package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWebhookFlags: --webhook-url needs a signing secret, given as --webhook-secret-file
// (or the flag, or its environment variable); a plain-http URL off loopback is refused;
// every refusal names the flag.
func TestWebhookFlags(t *testing.T) {
	base := []string{"--no-auth", "--zk", "127.0.0.1:1", "--redis", "127.0.0.1:2", "--listen", "127.0.0.1:0"}
	secret := filepath.Join(t.TempDir(), "hook.key")
	if err := os.WriteFile(secret, []byte("  k3y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := probeRole(t, "router", append(base, "--webhook-url", "https://hooks.example.com/r", "--webhook-secret-file", secret)...); err != nil {
		t.Fatalf("url and secret file: %v\n%s", err, stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--webhook-url", "https://hooks.example.com/r"}, "--webhook-secret"},
		{[]string{"--webhook-url", "http://hooks.example.com/r", "--webhook-secret-file", secret}, "--webhook-url"},
		{[]string{"--webhook-url", "https://hooks.example.com/r", "--webhook-secret-file", secret, "--webhook-batch", "0"}, "--webhook-batch"},
		{[]string{"--receipt-grace", "-1s"}, "--receipt-grace"},
	} {
		_, _, err := probeRole(t, "router", append(base, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want a refusal naming %s", c.args, err, c.want)
		}
	}
	fs, _, err := probeRole(t, "router", append(base, "--receipts=false")...)
	if err != nil {
		t.Fatalf("--receipts=false: %v", err)
	}
	if v := flagValue(t, fs, "receipts"); v != "false" {
		t.Fatalf("--receipts is %s", v)
	}
}
