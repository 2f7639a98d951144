package cli_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestSendNoRouterHint: send and mailbox against an address where nothing listens fail
// naming the URL they tried, the flag that changes it, and where `switchboard up` serves
// the API by default.
func TestSendNoRouterHint(t *testing.T) {
	t.Chdir(t.TempDir()) // no ./.switchboard of a running up to discover
	api := "http://" + testenv.RefusedAddr(t)
	for _, args := range [][]string{
		{"send", "--api", api, "--to", "dev-1", "hello"},
		{"send", "--api", api, "--to", "dev-1,dev-2", "hello"},
		{"mailbox", "--api", api, "--to", "dev-1"},
	} {
		code, _, errOut := run(t, 30*time.Second, args...)
		if code == 0 {
			t.Fatalf("%q with nothing listening exited 0", args)
		}
		for _, want := range []string{"connection refused", "no router API listens at " + api, "--api",
			"`switchboard up` serves the API on http://127.0.0.1:8080 by default"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("%q: error lacks %q:\n%s", args, want, errOut)
			}
		}
	}
}
