package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	hsSecret = []byte("0123456789abcdef0123456789abcdef")
	rsaKeys  = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })
)

func rsaKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsaKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claims returns valid claims for client c: exp in an hour.
func claims(c string) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{Subject: c, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}
}

func TestJWT(t *testing.T) {
	key := rsaKey(t)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&key.PublicKey))})
	path := writeFile(t, `{"acl": [{"topic": "devices/%c/#", "access": "readwrite"}, {"topic": "status/%u", "access": "read"}]}`)
	both := newAuth(t, Config{File: path, JWT: &JWTConfig{HS256Secret: hsSecret, RS256PublicKey: &key.PublicKey}})
	rsOnly := newAuth(t, Config{File: path, JWT: &JWTConfig{RS256PublicKey: &key.PublicKey}})
	hsOnly := newAuth(t, Config{JWT: &JWTConfig{HS256Secret: hsSecret, Issuer: "https://idp", Audience: "switchboard"}})

	withTimes := func(c string, exp, nbf time.Duration) jwt.RegisteredClaims {
		cl := claims(c)
		cl.ExpiresAt = jwt.NewNumericDate(time.Now().Add(exp))
		if nbf != 0 {
			cl.NotBefore = jwt.NewNumericDate(time.Now().Add(nbf))
		}
		return cl
	}
	issAud := func(iss, aud string) jwt.RegisteredClaims {
		cl := claims("dev1")
		cl.Issuer, cl.Audience = iss, jwt.ClaimStrings{aud}
		return cl
	}
	noExp := claims("dev1")
	noExp.ExpiresAt = nil
	noSub := claims("")

	for _, tc := range []struct {
		name   string
		a      *Authenticator
		user   string
		token  string
		client string
		want   error
		reason string
	}{
		{"hs256", both, "", sign(t, jwt.SigningMethodHS256, hsSecret, claims("dev1")), "dev1", nil, ""},
		{"rs256", both, "", sign(t, jwt.SigningMethodRS256, key, claims("dev1")), "dev1", nil, ""},
		{"username ignored", both, "alice", sign(t, jwt.SigningMethodHS256, hsSecret, claims("dev1")), "dev1", nil, ""},
		{"iss and aud", hsOnly, "", sign(t, jwt.SigningMethodHS256, hsSecret, issAud("https://idp", "switchboard")), "dev1", nil, ""},
		{"within leeway", both, "", sign(t, jwt.SigningMethodHS256, hsSecret, withTimes("dev1", -10*time.Second, 10*time.Second)), "dev1", nil, ""},

		{"sub is another client", both, "", sign(t, jwt.SigningMethodHS256, hsSecret, claims("dev1")), "dev2", ErrClientIDNotAllowed, "token is for client id"},
		{"no sub", both, "", sign(t, jwt.SigningMethodHS256, hsSecret, noSub), "dev1", ErrBadCredentials, "no sub"},
		{"expired", both, "", sign(t, jwt.SigningMethodHS256, hsSecret, withTimes("dev1", -time.Hour, 0)), "dev1", ErrBadCredentials, "token expired"},
		{"no exp", both, "", sign(t, jwt.SigningMethodHS256, hsSecret, noExp), "dev1", ErrBadCredentials, "exp claim is required"},
		{"not yet", both, "", sign(t, jwt.SigningMethodHS256, hsSecret, withTimes("dev1", 2*time.Hour, time.Hour)), "dev1", ErrBadCredentials, "not valid yet"},
		{"wrong secret", both, "", sign(t, jwt.SigningMethodHS256, []byte("another secret, 32 bytes long.."), claims("dev1")), "dev1", ErrBadCredentials, "bad token signature"},
		{"wrong rsa key", both, "", sign(t, jwt.SigningMethodRS256, otherKey, claims("dev1")), "dev1", ErrBadCredentials, "bad token signature"},
		{"alg none", both, "", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("dev1")), "dev1", ErrBadCredentials, "none"},
		{"alg none with a signature", both, "", noneWithSignature(t, claims("dev1")), "dev1", ErrBadCredentials, "none"},
		{"hs384", both, "", sign(t, jwt.SigningMethodHS384, hsSecret, claims("dev1")), "dev1", ErrBadCredentials, "HS384"},
		{"rs512", both, "", sign(t, jwt.SigningMethodRS512, key, claims("dev1")), "dev1", ErrBadCredentials, "RS512"},
		// the classic confusion: the RSA public key used as an HMAC secret
		{"public key as hmac secret", rsOnly, "", sign(t, jwt.SigningMethodHS256, pubPEM, claims("dev1")), "dev1", ErrBadCredentials, "HS256"},
		{"hs256 without a secret", rsOnly, "", sign(t, jwt.SigningMethodHS256, hsSecret, claims("dev1")), "dev1", ErrBadCredentials, "HS256"},
		{"wrong issuer", hsOnly, "", sign(t, jwt.SigningMethodHS256, hsSecret, issAud("https://evil", "switchboard")), "dev1", ErrBadCredentials, "issuer"},
		{"wrong audience", hsOnly, "", sign(t, jwt.SigningMethodHS256, hsSecret, issAud("https://idp", "other")), "dev1", ErrBadCredentials, "audience"},
		{"no issuer", hsOnly, "", sign(t, jwt.SigningMethodHS256, hsSecret, claims("dev1")), "dev1", ErrBadCredentials, "iss claim is required"},
		{"tampered payload", both, "", tamper(t, sign(t, jwt.SigningMethodHS256, hsSecret, claims("dev1")), claims("dev2")), "dev2", ErrBadCredentials, "signature"},
		{"garbage header", both, "", "eyJub3QganNvbg.eyJzdWIiOiJkZXYxIn0.c2ln", "dev1", ErrBadCredentials, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.a.Authenticate(tc.user, []byte(tc.token), tc.client)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.Method != MethodJWT || id.ClientID != tc.client || id.Username != "" || id.Expires.IsZero() {
					t.Fatalf("identity %+v", id)
				}
				return
			}
			if !errors.Is(err, tc.want) || id != nil {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err %q does not say %q", err, tc.reason)
			}
		})
	}

	// rules: %c is the token's sub; %u matches nothing (the MQTT username is not verified)
	id := login(t, both, "alice", sign(t, jwt.SigningMethodHS256, hsSecret, claims("dev1")), "dev1")
	check(t, id, map[string]bool{
		"inbox/dev1": true, "inbox/dev2": false, "devices/dev1/#": true, "devices/+/#": false,
		"status/alice": false, "status/": false,
	}, map[string]bool{"devices/dev1/up": true, "devices/dev2/up": false})

	// a token whose sub would widen %c
	wide := login(t, both, "", sign(t, jwt.SigningMethodHS256, hsSecret, claims("a/#")), "a/#")
	check(t, wide, map[string]bool{"inbox/a/#": false, "devices/a/#": false, "inbox/a": false}, map[string]bool{"devices/a/x": false})
}

// TestJWTNotConfigured: without JWT a token is just a wrong password (with a username) or
// a password without one.
func TestJWTNotConfigured(t *testing.T) {
	a := newAuth(t, Config{File: writeFile(t, aliceFile(t)), AllowAnonymous: true})
	tok := sign(t, jwt.SigningMethodHS256, hsSecret, claims("dev1"))
	if _, err := a.Authenticate("", []byte(tok), "dev1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("err = %v", err)
	}
	if _, err := a.Authenticate("alice", []byte(tok), "alice"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("err = %v", err)
	}
}

// TestPasswordWithDots: with JWT configured, a password that merely has two dots still
// logs in as a password.
func TestPasswordWithDots(t *testing.T) {
	file := strings.Replace(aliceFile(t), hashOf(t, "alice-pw"), hashOf(t, "my.pass.word"), 1)
	a := newAuth(t, Config{File: writeFile(t, file), JWT: &JWTConfig{HS256Secret: hsSecret}})
	login(t, a, "alice", "my.pass.word", "alice")
	for _, pw := range []string{"my.pass.word", "a.b.c", "a..b", "x.y.z.w"} {
		if looksLikeJWT([]byte(pw)) {
			t.Errorf("looksLikeJWT(%q)", pw)
		}
	}
}

func TestLoadRS256PublicKey(t *testing.T) {
	key := rsaKey(t)
	pkix := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&key.PublicKey))})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)})
	for _, p := range [][]byte{pkix, pkcs1} {
		k, err := LoadRS256PublicKey(p)
		if err != nil {
			t.Fatal(err)
		}
		if !k.Equal(&key.PublicKey) {
			t.Fatal("different key")
		}
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	for _, bad := range []struct {
		pem  []byte
		want string
	}{
		{nil, "no PEM block"},
		{[]byte("not pem"), "no PEM block"},
		{pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&small.PublicKey)}), "rs256 public key"},
		{pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&small.PublicKey)}), "1024 bits"},
		{priv, "RSA PRIVATE KEY"},
	} {
		if _, err := LoadRS256PublicKey(bad.pem); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("LoadRS256PublicKey: %v, want an error about %q", err, bad.want)
		}
	}
	if err := (Config{JWT: &JWTConfig{RS256PublicKey: &small.PublicKey}}).Validate(); err == nil {
		t.Error("a 1024-bit key validated")
	}
}

// noneWithSignature builds an alg "none" token that carries a signature part anyway.
func noneWithSignature(t *testing.T, c jwt.Claims) string {
	t.Helper()
	tok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, c)
	return strings.TrimSuffix(tok, ".") + "." + base64.RawURLEncoding.EncodeToString([]byte("sig"))
}

// tamper replaces the payload of a signed token, keeping header and signature.
func tamper(t *testing.T, token string, c jwt.Claims) string {
	t.Helper()
	parts := strings.Split(token, ".")
	other := strings.Split(sign(t, jwt.SigningMethodHS256, []byte("whatever-whatever-whatever-whatever"), c), ".")
	return parts[0] + "." + other[1] + "." + parts[2]
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
