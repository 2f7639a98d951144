package cli

import (
	"path/filepath"
	"testing"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestBenchTLS: bench connect --tls-ca verifies the brokers against that CA under the
// first address's host, named once for every connection; a file without a certificate
// is a usage error.
func TestBenchTLS(t *testing.T) {
	certs := testenv.GenerateCerts(t)
	tc, err := benchTLS(certs.CA, "127.0.0.1:8883,127.0.0.1:8884")
	if err != nil {
		t.Fatal(err)
	}
	if tc.RootCAs == nil || tc.ServerName != "127.0.0.1" {
		t.Fatalf("roots %v, server name %q; want the CA and 127.0.0.1", tc.RootCAs != nil, tc.ServerName)
	}
	if _, err := benchTLS(certs.ServerKey, "127.0.0.1:8883"); err == nil {
		t.Fatal("a key file taken for a CA")
	}
	if _, err := benchTLS(filepath.Join(t.TempDir(), "missing.pem"), "127.0.0.1:8883"); err == nil {
		t.Fatal("a missing CA file accepted")
	}
}
