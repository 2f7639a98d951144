package auth

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestAnonymousCannotTakeAUsersClientID: with a credentials file and anonymous access
// both on, the client ids the users' patterns cover (exact ids, %u, prefixes) are
// reserved; anonymous clients get only ids no user owns.
func TestAnonymousCannotTakeAUsersClientID(t *testing.T) {
	a := newAuth(t, Config{File: writeFile(t, aliceFile(t)), AllowAnonymous: true})
	for _, id := range []string{"alice", "alice-phone-7", "bob", "ops", "ops-dashboard"} {
		if _, err := a.Authenticate("", nil, id); !errors.Is(err, ErrClientIDNotAllowed) {
			t.Fatalf("anonymous as %q: %v, want ErrClientIDNotAllowed", id, err)
		}
	}
	for _, id := range []string{"carol", "alice-laptop", "bobby", "xops-1"} {
		if _, err := a.Authenticate("", nil, id); err != nil {
			t.Fatalf("anonymous as %q (no user owns it): %v", id, err)
		}
	}
}

// TestRevokedTokens: a token revoked by jti or by sub is refused, and a session it opened
// is no longer Valid once the file that revokes it is loaded.
func TestRevokedTokens(t *testing.T) {
	path := writeFile(t, `{}`)
	a := newAuth(t, Config{File: path, JWT: &JWTConfig{HS256Secret: hsSecret}})
	withID := func(sub, jti string) []byte {
		c := claims(sub)
		c.ID = jti
		return []byte(sign(t, jwt.SigningMethodHS256, hsSecret, c))
	}
	idA, err := a.Authenticate("", withID("phone-a", "tok-a"), "phone-a")
	if err != nil {
		t.Fatal(err)
	}
	idB, err := a.Authenticate("", withID("phone-b", "tok-b"), "phone-b")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"revoked": {"jti": ["tok-a"], "sub": ["phone-b"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	n0, changed := a.Changed()
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed did not fire on a reload that changed the rules")
	}
	if n1, _ := a.Changed(); n1 != n0+1 {
		t.Fatalf("loads %d -> %d", n0, n1)
	}
	if err := idA.Valid(); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a session of a token revoked by jti: %v, want ErrBadCredentials", err)
	}
	if err := idB.Valid(); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a session of a token revoked by sub: %v, want ErrBadCredentials", err)
	}
	for _, c := range []struct{ sub, jti string }{{"phone-a", "tok-a"}, {"phone-b", "tok-b2"}} {
		if _, err := a.Authenticate("", withID(c.sub, c.jti), c.sub); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("revoked token %+v: %v, want ErrBadCredentials", c, err)
		}
	}
	if _, err := a.Authenticate("", withID("phone-c", "tok-c"), "phone-c"); err != nil {
		t.Fatalf("a token nobody revoked: %v", err)
	}
}

// TestIdentityValidAfterReload: a password session stays valid while its user, password
// hash and client pattern stand, and stops being valid when any of them goes; an
// anonymous session stops when its id becomes a user's. The error says it as
// Authenticate would for the same credentials now (a node's CONNACK code follows it).
func TestIdentityValidAfterReload(t *testing.T) {
	path := writeFile(t, aliceFile(t))
	a := newAuth(t, Config{File: path, AllowAnonymous: true})
	alice := login(t, a, "alice", "alice-pw", "alice-phone-1")
	bob := login(t, a, "bob", "bob-pw", "bob")
	ops := login(t, a, "ops", "ops-pw", "ops-1")
	anon := login(t, a, "", "", "carol")
	for _, id := range []*Identity{alice, bob, ops, anon} {
		if err := id.Valid(); err != nil {
			t.Fatalf("%s before any change: %v", id.ClientID, err)
		}
	}
	// alice loses her phone pattern, bob gets a new password, ops is removed, carol
	// becomes a user.
	next := fmt.Sprintf(`{"users": {
  "alice": {"password": %q, "clients": ["alice"]},
  "bob": {"password": %q},
  "carol": {"password": %q}
}}`, hashOf(t, "alice-pw"), hashOf(t, "bob-new-pw"), hashOf(t, "carol-pw"))
	if err := os.WriteFile(path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   *Identity
		want error
	}{{alice, ErrClientIDNotAllowed}, {bob, ErrBadCredentials}, {ops, ErrBadCredentials}, {anon, ErrClientIDNotAllowed}} {
		if err := c.id.Valid(); !errors.Is(err, c.want) {
			t.Fatalf("%s after the reload: %v, want %v", c.id.ClientID, err, c.want)
		}
	}
	if err := login(t, a, "alice", "alice-pw", "alice").Valid(); err != nil {
		t.Fatalf("a fresh login under the new rules: %v", err)
	}
}
