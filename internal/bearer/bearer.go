// Package bearer reads the token of an HTTP Authorization header with the Bearer scheme
// (RFC 6750), for the router's API and the node's admin endpoints alike.
package bearer

import "strings"

// Token returns the token of an Authorization header value "Bearer <token>". The scheme
// is case-insensitive (RFC 9110 §11.1: "bearer" and "BEARER" are the same scheme), and the
// spaces around the token are not part of it. ok is false for another scheme or an empty
// token.
func Token(header string) (token string, ok bool) {
	const scheme = "bearer"
	if len(header) <= len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) || header[len(scheme)] != ' ' {
		return "", false
	}
	token = strings.TrimSpace(header[len(scheme):])
	return token, token != ""
}
