package node

import (
	"errors"
	"testing"
)

// FuzzConnectProperties: checkConnectProperties never panics on any CONNECT body, and
// refuses only with errConnectProtocol. The seeds (run by go test) include every prefix
// of a valid MQTT 5 CONNECT body.
func FuzzConnectProperties(f *testing.F) {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 18,
		0x21, 0, 10, 0x27, 0, 1, 0, 0, 0x26, 0, 1, 'k', 0, 1, 'v', 0x15, 0, 0,
		0, 2, 'i', 'd'}
	for i := range body {
		f.Add(body[:i])
	}
	f.Add([]byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0, 0, 30, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := checkConnectProperties(b); err != nil && !errors.Is(err, errConnectProtocol) {
			t.Fatalf("checkConnectProperties(%x) = %v", b, err)
		}
	})
}
