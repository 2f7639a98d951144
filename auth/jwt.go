package auth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// looksLikeJWT reports whether a password is shaped like a compact JWS: three base64url
// parts (only the signature may be empty), the first decoding to a JSON object. A
// password that merely has two dots ("my.pass.word") is still checked as a password.
func looksLikeJWT(pw []byte) bool {
	parts := bytes.Split(pw, []byte("."))
	if len(parts) != 3 {
		return false
	}
	for i, p := range parts {
		if len(p) == 0 && i < 2 { // an empty signature is an unsigned token: still a token
			return false
		}
		for _, c := range p {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	header, err := base64.RawURLEncoding.DecodeString(string(parts[0]))
	return err == nil && bytes.HasPrefix(bytes.TrimSpace(header), []byte("{"))
}

// authenticateJWT verifies a token and binds it to clientID through its sub.
func (a *Authenticator) authenticateJWT(token []byte, clientID string) (*Identity, error) {
	cfg := a.cfg.JWT
	var methods []string
	if len(cfg.HS256Secret) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.RS256PublicKey != nil {
		methods = append(methods, jwt.SigningMethodRS256.Alg())
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods), // refuses "none" and every other alg
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	claims := &jwt.RegisteredClaims{}
	_, err := jwt.NewParser(opts...).ParseWithClaims(string(token), claims, func(t *jwt.Token) (any, error) {
		// Hand each method only its own kind of key, so an RSA public key can never be
		// used as an HMAC secret.
		switch t.Method {
		case jwt.SigningMethodHS256:
			if len(cfg.HS256Secret) > 0 {
				return cfg.HS256Secret, nil
			}
		case jwt.SigningMethodRS256:
			if cfg.RS256PublicKey != nil {
				return cfg.RS256PublicKey, nil
			}
		}
		return nil, fmt.Errorf("alg %v is not accepted", t.Header["alg"])
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadCredentials, tokenReason(err))
	}
	if claims.Subject == "" {
		return nil, fmt.Errorf("%w: token has no sub (it must be the client id)", ErrBadCredentials)
	}
	if claims.Subject != clientID {
		return nil, fmt.Errorf("%w: token is for client id %.64q, not %.64q", ErrClientIDNotAllowed, claims.Subject, clientID)
	}
	if err := a.rules.Load().checkRevoked(claims.ID, claims.Subject); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCredentials, err)
	}
	id := &Identity{ClientID: clientID, Method: MethodJWT, a: a, jti: claims.ID}
	if claims.ExpiresAt != nil {
		id.Expires = claims.ExpiresAt.Time
	}
	return id, nil
}

// tokenReason turns a jwt parse error into the reason for the log.
func tokenReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Sprintf("token lacks a required claim (%v)", err) // says which: exp, iss, aud
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Sprintf("bad token signature (%v)", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token has the wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token has the wrong audience"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return fmt.Sprintf("token unverifiable: %v", err)
	}
	return fmt.Sprintf("invalid token: %v", err)
}
