// Package auth decides who may connect to a broker node, with which client id, and what
// each client may subscribe to and publish.
//
// A client authenticates with a username and bcrypt-checked password from the
// credentials file, with a signed JWT whose sub is its client id, or (when allowed) with
// nothing. A client id is bound to the credentials: a user may connect only with the ids
// its "clients" patterns allow, a token only with its sub. Access is denied by default:
// each client may read exactly its own inbox topic, and everything else must be granted
// by a rule in the file.
//
// Concurrency: Authenticate and the Identity methods may be called by any number of
// goroutines at once, also while Start or Reload swap in a new file. The file is compiled
// into an immutable snapshot and published through an atomic pointer, so a check sees
// either the old rules or the new ones, never a mix. An Identity always checks against
// the current snapshot: a rule added or removed takes effect for connected clients at
// their next subscribe or publish.
package auth

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-mqtt/switchboard/inbox"
	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// Sentinel errors of Authenticate; the returned error wraps one of them and adds the
// reason for the log ("unknown user", "token expired"). Send the client only the
// CONNACK code: the reason tells which usernames exist.
var (
	// ErrBadCredentials: unknown user, wrong password, or a token that is malformed,
	// badly signed, expired or otherwise invalid (CONNACK 0x86 / 3.1.1: 4).
	ErrBadCredentials = errors.New("bad credentials")
	// ErrClientIDNotAllowed: the credentials are good but do not allow this client id
	// (CONNACK 0x85 or 0x87 / 3.1.1: 2 or 5).
	ErrClientIDNotAllowed = errors.New("client id not allowed")
	// ErrAnonymousNotAllowed: no credentials and anonymous clients are refused
	// (CONNACK 0x87 / 3.1.1: 5).
	ErrAnonymousNotAllowed = errors.New("anonymous clients not allowed")
)

// Identity.Method values.
const (
	MethodPassword  = "password"
	MethodJWT       = "jwt"
	MethodAnonymous = "anonymous"
)

// Authenticator checks credentials and hands out Identities. Create it with New.
type Authenticator struct {
	cfg     Config
	minCost int // lowest bcrypt cost accepted in the file
	rules   atomic.Pointer[ruleSet]

	reloadMu sync.Mutex // serialises Reload and the poller's loads

	dummyMu sync.Mutex
	dummies map[int][]byte // bcrypt cost -> hash compared against for unknown users

	startOnce sync.Once
	wg        sync.WaitGroup // the poller started by Start

	loads notify.Value[uint64] // rule sets installed after the first
}

// New validates cfg and loads the file (an error if it is unreadable or invalid). It
// starts no goroutine; call Start to follow changes to the file.
func New(cfg Config) (*Authenticator, error) {
	return newAuthenticator(cfg, minBcryptCost)
}

// newAuthenticator is New with the lowest bcrypt cost accepted in the file as a
// parameter, so that tests can use cheap hashes.
func newAuthenticator(cfg Config, minCost int) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Authenticator{cfg: cfg.withDefaults(), minCost: minCost, dummies: map[int][]byte{}}
	rs := &ruleSet{dummyCost: minCost}
	if a.cfg.File != "" {
		data, err := readFile(a.cfg.File)
		if err != nil {
			return nil, err
		}
		if rs, err = parseRuleSet(a.cfg.File, data, minCost); err != nil {
			return nil, err
		}
	}
	a.rules.Store(rs)
	return a, nil
}

// readFile reads the credentials file, refusing one larger than maxFileSize.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	defer f.Close()
	data, err := readLimited(f, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	return data, nil
}

// Identity is an authenticated client. Its methods are safe for concurrent use.
type Identity struct {
	// Username is the verified username; "" for token and anonymous clients (the MQTT
	// username they send is not verified, so it is not used, and %u matches nothing).
	Username string
	// ClientID is the client id the credentials were checked against.
	ClientID string
	// Method is MethodPassword, MethodJWT or MethodAnonymous.
	Method string
	// Expires is the token's exp for MethodJWT (zero otherwise). Authenticate enforces it
	// at connect time only; a broker that wants the session to end with the token should
	// disconnect the client then.
	Expires time.Time

	a    *Authenticator
	hash []byte // MethodPassword: the hash it was checked against
	jti  string // MethodJWT: the token's id, if it had one
}

// Authenticate checks a client's CONNECT credentials:
//
//  1. With JWT configured and a password shaped like a JWT, the token is verified
//     (HS256 or RS256 only, exp required, nbf, iss and aud honoured) and its sub must
//     equal clientID; the username is ignored.
//  2. Otherwise a non-empty username is looked up and the password compared with bcrypt;
//     then clientID must match one of the user's client patterns.
//  3. Otherwise (no username, no password) the client is anonymous, admitted only when
//     AllowAnonymous is set.
//
// The error wraps ErrBadCredentials, ErrClientIDNotAllowed or ErrAnonymousNotAllowed.
func (a *Authenticator) Authenticate(username string, password []byte, clientID string) (*Identity, error) {
	if a.cfg.JWT != nil && looksLikeJWT(password) {
		return a.authenticateJWT(password, clientID)
	}
	if username != "" {
		return a.authenticatePassword(username, password, clientID)
	}
	if len(password) > 0 {
		return nil, fmt.Errorf("%w: a password without a username", ErrBadCredentials)
	}
	if !a.cfg.AllowAnonymous {
		return nil, ErrAnonymousNotAllowed
	}
	if a.rules.Load().reserved(clientID) {
		return nil, fmt.Errorf("%w: client id %.64q belongs to a user in the credentials file; anonymous clients may not use it",
			ErrClientIDNotAllowed, clientID)
	}
	return &Identity{ClientID: clientID, Method: MethodAnonymous, a: a}, nil
}

func (a *Authenticator) authenticatePassword(username string, password []byte, clientID string) (*Identity, error) {
	rs := a.rules.Load()
	u := rs.users[username]
	if u == nil || len(password) > maxPasswordLen {
		// Spend what a real comparison costs, so the time taken does not tell whether
		// the user exists.
		_ = bcrypt.CompareHashAndPassword(a.dummyHash(rs.dummyCost), password[:min(len(password), maxPasswordLen)])
		if u == nil {
			return nil, fmt.Errorf("%w: unknown user %.64q", ErrBadCredentials, username)
		}
		return nil, fmt.Errorf("%w: user %q: password longer than %d bytes", ErrBadCredentials, username, maxPasswordLen)
	}
	if err := bcrypt.CompareHashAndPassword(u.hash, password); err != nil {
		return nil, fmt.Errorf("%w: wrong password for user %q", ErrBadCredentials, username)
	}
	if !u.allowsClient(username, clientID) {
		return nil, fmt.Errorf("%w: user %q may not connect as client id %.64q", ErrClientIDNotAllowed, username, clientID)
	}
	return &Identity{Username: username, ClientID: clientID, Method: MethodPassword, a: a, hash: u.hash}, nil
}

// Valid reports whether the identity would still be admitted under the rules in force:
// its user is still in the file with the same password hash and may still use this client
// id, its token has not been revoked or expired, or (anonymous) its client id has not
// become a user's. A node checks its connected clients after every reload and ends the
// sessions that are no longer valid (and a token's expiry on a timer of its own). The error
// wraps what Authenticate would return for the same credentials now: ErrBadCredentials or
// ErrClientIDNotAllowed.
func (id *Identity) Valid() error {
	if id == nil || id.a == nil {
		return errors.New("no identity")
	}
	rs := id.a.rules.Load()
	switch id.Method {
	case MethodPassword:
		u := rs.users[id.Username]
		switch {
		case u == nil:
			return fmt.Errorf("%w: user %q was removed", ErrBadCredentials, id.Username)
		case !bytes.Equal(u.hash, id.hash):
			return fmt.Errorf("%w: user %q's password was changed", ErrBadCredentials, id.Username)
		case !u.allowsClient(id.Username, id.ClientID):
			return fmt.Errorf("%w: user %q may no longer use client id %.64q", ErrClientIDNotAllowed, id.Username, id.ClientID)
		}
	case MethodJWT:
		if err := rs.checkRevoked(id.jti, id.ClientID); err != nil {
			return fmt.Errorf("%w: %v", ErrBadCredentials, err)
		}
		if !id.Expires.IsZero() && !time.Now().Before(id.Expires) {
			return fmt.Errorf("%w: token expired", ErrBadCredentials)
		}
	case MethodAnonymous:
		if rs.reserved(id.ClientID) {
			return fmt.Errorf("%w: client id %.64q now belongs to a user", ErrClientIDNotAllowed, id.ClientID)
		}
	}
	return nil
}

// checkRevoked refuses a token revoked by jti or by sub.
func (rs *ruleSet) checkRevoked(jti, sub string) error {
	switch {
	case jti != "" && rs.revokedJTI[jti]:
		return fmt.Errorf("token %.64q was revoked", jti)
	case rs.revokedSub[sub]:
		return fmt.Errorf("tokens for client id %.64q were revoked", sub)
	}
	return nil
}

// Changed returns the number of rule sets loaded so far and a channel closed at the next
// load that changes the rules (a node then checks its sessions with Identity.Valid).
func (a *Authenticator) Changed() (uint64, <-chan struct{}) { return a.loads.Get() }

// dummyHash returns a bcrypt hash of the given cost that no password is compared with
// successfully; it is made on first use (it takes as long as one login).
func (a *Authenticator) dummyHash(cost int) []byte {
	a.dummyMu.Lock()
	defer a.dummyMu.Unlock()
	h, ok := a.dummies[cost]
	if !ok {
		var err error
		h, err = bcrypt.GenerateFromPassword([]byte("switchboard: no such user"), cost)
		if err != nil { // cost out of range cannot happen: it comes from a parsed hash
			h, _ = bcrypt.GenerateFromPassword([]byte("switchboard: no such user"), hashCost)
		}
		a.dummies[cost] = h
	}
	return h
}

// rules returns the read or write rules that apply to id under the current snapshot,
// the global ones and its user's own; ok is false when id no longer has any access: its
// user was removed from the file, or may no longer use this client id.
func (id *Identity) rules(write bool) (global, own []rule, ok bool) {
	if id == nil || id.a == nil {
		return nil, nil, false
	}
	rs := id.a.rules.Load()
	global = rs.read
	if write {
		global = rs.write
	}
	if id.Method != MethodPassword {
		return global, nil, true
	}
	u := rs.users[id.Username]
	if u == nil || !u.allowsClient(id.Username, id.ClientID) {
		return nil, nil, false
	}
	if write {
		return global, u.write, true
	}
	return global, u.read, true
}

// ownTopic reports whether topic is one every client may use as its own: its inbox (read
// only) or its probe topic.
func (id *Identity) ownTopic(topic string, write bool) bool {
	if !safeValue(id.ClientID) {
		return false
	}
	return topic == inbox.ProbeTopicPrefix+id.ClientID || (!write && topic == id.a.cfg.InboxPrefix+id.ClientID)
}

// CanSubscribe reports whether the client may subscribe to filter, as sent in SUBSCRIBE
// (wildcards, "$share/<group>/<filter>"). The share prefix is removed first: a share group
// grants nothing. The filter is allowed only if every topic it can match is allowed by one
// read rule; its own inbox and probe topics (exactly, without wildcards) are always allowed.
func (id *Identity) CanSubscribe(filter string) bool {
	f, ok := stripShare(filter)
	if !ok || checkFilter(f) != nil {
		return false
	}
	global, own, ok := id.rules(false)
	if !ok {
		return false
	}
	if id.ownTopic(f, false) {
		return true
	}
	return id.anyCovers(global, own, strings.Split(f, "/"))
}

// CanPublish reports whether the client may publish on topic: the real topic, after
// topic-alias resolution. An empty topic, or one with a wildcard, is refused; its own probe
// topic is always allowed.
func (id *Identity) CanPublish(topic string) bool {
	if checkTopic(topic) != nil {
		return false
	}
	global, own, ok := id.rules(true)
	if !ok {
		return false
	}
	if id.ownTopic(topic, true) {
		return true
	}
	return id.anyCovers(global, own, strings.Split(topic, "/"))
}

func (id *Identity) anyCovers(global, own []rule, levels []string) bool {
	for _, rules := range [2][]rule{own, global} {
		for _, r := range rules {
			if r.coversFilter(levels, id.Username, id.ClientID) {
				return true
			}
		}
	}
	return false
}
