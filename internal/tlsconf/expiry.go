package tlsconf

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/prometheus/client_golang/prometheus"
)

// ExpiryMetric is the gauge every role exports for each certificate it serves or presents:
// the certificate's notAfter as Unix seconds, labelled by what it is for (mqtt, internal,
// api). An alert compares it with time() (deploy/prometheus/alerts.yml).
const ExpiryMetric = "switchboard_tls_certificate_expiration_timestamp_seconds"

// ExpiryCollector returns a gauge of the notAfter of cfg's first certificate, labelled
// cert=use, or nil when cfg carries no certificate (no TLS, or a client side without a
// client certificate). Certificates are loaded once, at start, so the value is that of the
// certificate in use until the process restarts with a new one.
func ExpiryCollector(use string, cfg *tls.Config) prometheus.Collector {
	if cfg == nil || len(cfg.Certificates) == 0 || len(cfg.Certificates[0].Certificate) == 0 {
		return nil
	}
	cert := cfg.Certificates[0]
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil
		}
	}
	notAfter := float64(leaf.NotAfter.Unix())
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        ExpiryMetric,
		Help:        "Expiry (notAfter, Unix seconds) of the TLS certificate this process presents, by use (mqtt, internal, api).",
		ConstLabels: prometheus.Labels{"cert": use},
	}, func() float64 { return notAfter })
}

// RegisterExpiry registers ExpiryCollector(use, cfg) on reg when cfg carries a certificate.
func RegisterExpiry(reg prometheus.Registerer, use string, cfg *tls.Config) {
	if c := ExpiryCollector(use, cfg); c != nil {
		reg.MustRegister(c)
	}
}
