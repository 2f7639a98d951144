package tlsconf_test

import (
	"crypto/tls"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/internal/tlsconf"
)

// gather returns the expiry gauge's values by cert label.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != tlsconf.ExpiryMetric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cert" {
					got[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return got
}

func TestExpiryCollector(t *testing.T) {
	certs := testenv.GenerateCerts(t)
	cfg, err := tlsconf.Server(certs.ServerCert, certs.ServerKey, "")
	if err != nil {
		t.Fatal(err)
	}
	leaf := cfg.Certificates[0].Leaf
	if leaf == nil {
		t.Fatal("tls.LoadX509KeyPair gave no parsed leaf certificate")
	}
	want := float64(leaf.NotAfter.Unix())
	// Without the parsed leaf, the DER certificate is parsed.
	bare := cfg.Clone()
	bare.Certificates = []tls.Certificate{{Certificate: cfg.Certificates[0].Certificate}}

	reg := prometheus.NewRegistry()
	tlsconf.RegisterExpiry(reg, "mqtt", cfg)
	tlsconf.RegisterExpiry(reg, "internal", bare)                 // same name, another label
	tlsconf.RegisterExpiry(reg, "api", nil)                       // no TLS: nothing
	tlsconf.RegisterExpiry(reg, "internal-client", &tls.Config{}) // a client side without a certificate: nothing
	got := gather(t, reg)
	if len(got) != 2 || got["mqtt"] != want || got["internal"] != want {
		t.Fatalf("expiry gauges %v, want mqtt and internal at %v", got, want)
	}
}
