package auth

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-mqtt/switchboard/inbox"
)

// Config configures an Authenticator.
type Config struct {
	// File is the credentials and ACL file (JSON); "" means no users and no rules beyond
	// each client's own inbox.
	File string
	// AllowAnonymous admits clients that send neither a username nor a token; they get
	// only the rules every client gets. Off by default.
	AllowAnonymous bool
	// JWT, when set, lets clients authenticate with a signed token as the password.
	JWT *JWTConfig
	// InboxPrefix is the inbox topic prefix: client c may always subscribe to exactly
	// InboxPrefix+c. "" means inbox.DefaultPrefix ("inbox/").
	InboxPrefix string
	// ReloadInterval is how often Start checks the file for changes; 0 means 2s.
	ReloadInterval time.Duration
	// Logger receives reloads and reload failures; nil discards.
	Logger *slog.Logger
}

// JWTConfig configures token authentication. At least one key must be set.
type JWTConfig struct {
	// HS256Secret verifies HS256 tokens; at least 32 bytes (RFC 7518 section 3.2).
	HS256Secret []byte
	// RS256PublicKey verifies RS256 tokens; at least 2048 bits.
	RS256PublicKey *rsa.PublicKey
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must be one of the token's aud.
	Audience string
	// Leeway is the clock skew allowed on exp and nbf; 0 means 30s.
	Leeway time.Duration
}

// Defaults.
const (
	DefaultReloadInterval = 2 * time.Second
	DefaultJWTLeeway      = 30 * time.Second
)

// DefaultConfig returns the defaults: no file (nobody but anonymous clients could
// connect, and they are refused), inbox prefix "inbox/", a 2s reload poll.
func DefaultConfig() Config {
	return Config{
		File:           "",                  // no users
		AllowAnonymous: false,               // deny clients without credentials
		JWT:            nil,                 // no token authentication
		InboxPrefix:    inbox.DefaultPrefix, // client c reads inbox/c
		ReloadInterval: DefaultReloadInterval,
		Logger:         nil, // discard
	}
}

// Validate checks the configuration without side effects (the file is read by New).
func (c Config) Validate() error {
	if c.ReloadInterval < 0 {
		return fmt.Errorf("auth: ReloadInterval %v is negative", c.ReloadInterval)
	}
	if p := c.InboxPrefix; p != "" {
		if !utf8.ValidString(p) || strings.ContainsAny(p, "+#\x00") {
			return fmt.Errorf("auth: InboxPrefix %q: want valid UTF-8 without '+', '#' or NUL", p)
		}
	}
	if j := c.JWT; j != nil {
		if len(j.HS256Secret) == 0 && j.RS256PublicKey == nil {
			return errors.New("auth: JWT is set but has neither HS256Secret nor RS256PublicKey")
		}
		if n := len(j.HS256Secret); n > 0 && n < 32 {
			return fmt.Errorf("auth: JWT.HS256Secret is %d bytes; at least 32 are required", n)
		}
		if k := j.RS256PublicKey; k != nil {
			if err := checkRSAKey(k); err != nil {
				return fmt.Errorf("auth: JWT.RS256PublicKey: %w", err)
			}
		}
		if j.Leeway < 0 {
			return fmt.Errorf("auth: JWT.Leeway %v is negative", j.Leeway)
		}
	}
	return nil
}

func checkRSAKey(k *rsa.PublicKey) error {
	if k.N == nil || k.N.BitLen() < 2048 {
		bits := 0
		if k.N != nil {
			bits = k.N.BitLen()
		}
		return fmt.Errorf("RSA key has %d bits; at least 2048 are required", bits)
	}
	return nil
}

// withDefaults fills the zero values.
func (c Config) withDefaults() Config {
	if c.InboxPrefix == "" {
		c.InboxPrefix = inbox.DefaultPrefix
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.JWT != nil {
		j := *c.JWT
		if j.Leeway == 0 {
			j.Leeway = DefaultJWTLeeway
		}
		j.HS256Secret = append([]byte(nil), j.HS256Secret...)
		c.JWT = &j
	}
	return c
}

// LoadRS256PublicKey parses a PEM-encoded RSA public key for JWTConfig.RS256PublicKey: a
// "PUBLIC KEY" (PKIX), "RSA PUBLIC KEY" (PKCS #1) or "CERTIFICATE" block. Keys shorter
// than 2048 bits are refused.
func LoadRS256PublicKey(pemBytes []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("rs256 public key: no PEM block found")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		return nil, fmt.Errorf("rs256 public key: PEM block %q: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("rs256 public key: %w", err)
	}
	k, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("rs256 public key: the key is a %T, not RSA", pub)
	}
	if err := checkRSAKey(k); err != nil {
		return nil, fmt.Errorf("rs256 public key: %w", err)
	}
	return k, nil
}
