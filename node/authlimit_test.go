package node_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-mqtt/switchboard/auth"
)

// TestAuthenticateWithinBounds: the credential check OnConnect runs on a real node counts
// failures per source address and, past the budget, refuses that address's CONNECTs with
// credentials without checking them (CONNACK 0x9F, 3.1.1 0x03); other addresses and
// anonymous clients are not affected, and an exempt address (a monitor's) has no budget:
// its failures are not counted, so its right password is still checked and admitted.
func TestAuthenticateWithinBounds(t *testing.T) {
	t.Parallel()
	c, st := backendsFor(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password"), 10)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "users.json")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(`{"users": {"alice": {"password": %q}}}`, hash)), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{File: file, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "auth-limit")
	cfg.Auth = a
	cfg.Limits.AuthFailuresPerIP = 3
	cfg.Limits.PerIPExempt = []netip.Prefix{netip.MustParsePrefix("192.0.2.9/32")}
	n := startNode(t, cfg, c, st)

	attacker, other := net.ParseIP("192.0.2.7"), net.ParseIP("192.0.2.8")
	for i := 0; i < 3; i++ {
		if _, _, err := n.AuthenticateForTest(attacker, 5, "alice", "wrong", "alice"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	for _, tc := range []struct {
		version byte
		pass    string
		code    byte
	}{
		{5, "wrong", 0x9F},          // MQTT 5: connection rate exceeded
		{5, "alice-password", 0x9F}, // the right password too: not checked
		{4, "alice-password", 0x03}, // 3.1.1: server unavailable
	} {
		method, out, err := n.AuthenticateForTest(attacker, tc.version, "alice", tc.pass, "alice")
		if method != "" || err == nil {
			t.Fatalf("v%d %q past the budget: admitted (%q)", tc.version, tc.pass, method)
		}
		if !connackCode(out, tc.version, tc.code) {
			t.Fatalf("v%d past the budget: wrote %x, want CONNACK %#x", tc.version, out, tc.code)
		}
	}
	if method, _, err := n.AuthenticateForTest(other, 5, "alice", "alice-password", "alice"); err != nil || method != auth.MethodPassword {
		t.Fatalf("another address: %q %v", method, err)
	}
	if method, _, err := n.AuthenticateForTest(attacker, 5, "", "", "anon-1"); err != nil || method != auth.MethodAnonymous {
		t.Fatalf("anonymous from the throttled address: %q %v", method, err)
	}
	monitor := net.ParseIP("192.0.2.9")
	for i := range 5 {
		if _, _, err := n.AuthenticateForTest(monitor, 4, "alice", "wrong", "alice"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("exempt address, failure %d: %v, want the password checked and refused", i, err)
		}
	}
	if method, _, err := n.AuthenticateForTest(monitor, 4, "alice", "alice-password", "alice"); err != nil || method != auth.MethodPassword {
		t.Fatalf("exempt address past the budget: %q %v, want admitted", method, err)
	}
}

// connackCode reports whether b is a CONNACK with reason (5) or return (3.1.1) code code.
func connackCode(b []byte, version, code byte) bool {
	if len(b) < 4 || b[0] != 0x20 {
		return false
	}
	body := b[2:]
	if version < 5 {
		return bytes.Equal(b, []byte{0x20, 2, 0, code})
	}
	return len(body) >= 2 && body[1] == code
}
