package mqttclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestDialTLS: with Options.TLS the client speaks MQTT inside TLS, verifying the server
// against the given roots under the dialled host's name; without it, a TLS-only server is
// not reached.
func TestDialTLS(t *testing.T) {
	certs := testenv.GenerateCerts(t)
	cert, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				// A CONNECT's fixed header, then its body; answered CONNACK accepted.
				hdr := make([]byte, 2)
				if _, err := io.ReadFull(c, hdr); err != nil || hdr[0] != 0x10 {
					return
				}
				if _, err := io.ReadFull(c, make([]byte, hdr[1])); err != nil {
					return
				}
				_, _ = c.Write([]byte{0x20, 2, 0, 0})
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	pem, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)

	c := dialT(t, l.Addr().String(), Options{ID: "tls-client", TLS: &tls.Config{RootCAs: roots}})
	if _, ok := c.conn.(*tls.Conn); !ok {
		t.Fatalf("connection is a %T, want *tls.Conn", c.conn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if plain, err := Dial(ctx, l.Addr().String(), Options{ID: "plain-client"}); err == nil {
		plain.Close()
		t.Fatal("a client without TLS completed CONNECT with a TLS server")
	}
}
