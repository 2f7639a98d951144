package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"
)

// Start runs a poller goroutine; every test must leave none behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCost is the bcrypt cost of the tests' hashes: the cheapest, because bcrypt under the
// race detector takes seconds at cost 10. Tests build Authenticators with
// newAuthenticator(cfg, testCost); TestProductionCost checks New's real minimum.
const testCost = bcrypt.MinCost

var testHashes sync.Map // password -> hash

func hashOf(t testing.TB, pw string) string {
	t.Helper()
	if h, ok := testHashes.Load(pw); ok {
		return h.(string)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), testCost)
	if err != nil {
		t.Fatal(err)
	}
	testHashes.Store(pw, string(h))
	return string(h)
}

// writeFile writes content to a file in a fresh directory and returns its path.
func writeFile(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// aliceFile is the file of the attacks: alice and bob are ordinary users, ops may
// read everything including $SYS.
func aliceFile(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf(`{
  "users": {
    "alice": {
      "password": %q,
      "clients": ["alice", "alice-phone-*"],
      "acl": [
        {"topic": "events/%%c/#", "access": "write"},
        {"topic": "broadcast/#", "access": "read"}
      ]
    },
    "bob": {"password": %q},
    "ops": {
      "password": %q,
      "clients": ["ops-*", "%%u"],
      "acl": [{"topic": "#", "access": "read"}, {"topic": "$SYS/#", "access": "read"}]
    }
  },
  "acl": [{"topic": "status/%%u", "access": "readwrite"}]
}`, hashOf(t, "alice-pw"), hashOf(t, "bob-pw"), hashOf(t, "ops-pw"))
}

func newAuth(t testing.TB, cfg Config) *Authenticator {
	t.Helper()
	a, err := newAuthenticator(cfg, testCost)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func login(t testing.TB, a *Authenticator, user, pw, client string) *Identity {
	t.Helper()
	id, err := a.Authenticate(user, []byte(pw), client)
	if err != nil {
		t.Fatalf("Authenticate(%q, %q): %v", user, client, err)
	}
	return id
}

func TestAuthenticatePassword(t *testing.T) {
	a := newAuth(t, Config{File: writeFile(t, aliceFile(t))})
	for _, tc := range []struct {
		user, pw, client string
		want             error // nil: admitted
		reason           string
	}{
		{"alice", "alice-pw", "alice", nil, ""},
		{"alice", "alice-pw", "alice-phone-1", nil, ""},
		{"alice", "alice-pw", "alice-phone-", nil, ""},
		{"bob", "bob-pw", "bob", nil, ""},
		{"ops", "ops-pw", "ops", nil, ""},
		{"ops", "ops-pw", "ops-console", nil, ""},
		// the issue: alice takes over bob's session by using his client id
		{"alice", "alice-pw", "bob", ErrClientIDNotAllowed, "may not connect as client id"},
		{"alice", "alice-pw", "alice2", ErrClientIDNotAllowed, ""},
		{"alice", "alice-pw", "xalice-phone-1", ErrClientIDNotAllowed, ""},
		{"alice", "alice-pw", "", ErrClientIDNotAllowed, ""},
		{"bob", "bob-pw", "bob-2", ErrClientIDNotAllowed, ""},
		{"alice", "bob-pw", "alice", ErrBadCredentials, "wrong password"},
		{"alice", "", "alice", ErrBadCredentials, "wrong password"},
		{"alice", "alice-pw ", "alice", ErrBadCredentials, "wrong password"},
		{"mallory", "alice-pw", "mallory", ErrBadCredentials, "unknown user"},
		{"alice", "alice-pw" + strings.Repeat("x", 70), "alice", ErrBadCredentials, "longer than 72"},
		{"", "alice-pw", "alice", ErrBadCredentials, "without a username"},
		{"", "", "alice", ErrAnonymousNotAllowed, ""},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.user, tc.client), func(t *testing.T) {
			id, err := a.Authenticate(tc.user, []byte(tc.pw), tc.client)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.Username != tc.user || id.ClientID != tc.client || id.Method != MethodPassword {
					t.Fatalf("identity %+v", id)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if id != nil {
				t.Fatalf("identity %+v returned with an error", id)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err %q does not say %q", err, tc.reason)
			}
			for _, s := range []error{ErrBadCredentials, ErrClientIDNotAllowed, ErrAnonymousNotAllowed} {
				if s != tc.want && errors.Is(err, s) {
					t.Fatalf("err %v also wraps %v", err, s)
				}
			}
		})
	}
}

// TestUnknownUserSpendsBcrypt: an unknown user costs a bcrypt comparison too, at the cost
// most users have.
func TestUnknownUserSpendsBcrypt(t *testing.T) {
	a := newAuth(t, Config{File: writeFile(t, aliceFile(t))})
	if c := a.rules.Load().dummyCost; c != testCost {
		t.Fatalf("dummy cost %d, want %d (the file's)", c, testCost)
	}
	if _, err := a.Authenticate("nobody", []byte("x"), "nobody"); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	h := a.dummies[testCost]
	if c, err := bcrypt.Cost(h); err != nil || c != testCost {
		t.Fatalf("dummy hash %q: cost %d, %v", h, c, err)
	}
}

func TestAnonymous(t *testing.T) {
	path := writeFile(t, `{"acl": [{"topic": "status/%u", "access": "read"}, {"topic": "public/%c/#", "access": "readwrite"}]}`)
	a := newAuth(t, Config{File: path, AllowAnonymous: true, InboxPrefix: "in/"})
	id := login(t, a, "", "", "dev1")
	if id.Method != MethodAnonymous || id.Username != "" {
		t.Fatalf("identity %+v", id)
	}
	check(t, id, map[string]bool{
		"in/dev1":          true,
		"inbox/dev1":       false, // the prefix is configured
		"in/dev2":          false,
		"public/dev1/x":    true,
		"public/dev2/x":    false,
		"status/":          false, // %u never matches without a verified username
		"status/+":         false,
		"$share/g/in/dev1": true,
	}, map[string]bool{
		"public/dev1/x": true,
		"in/dev1":       false,
		"status/":       false,
	})
}

// check asserts CanSubscribe for every filter in sub and CanPublish for every topic in pub.
func check(t *testing.T, id *Identity, sub, pub map[string]bool) {
	t.Helper()
	for f, want := range sub {
		if got := id.CanSubscribe(f); got != want {
			t.Errorf("%s/%s: CanSubscribe(%q) = %v, want %v", id.Username, id.ClientID, f, got, want)
		}
	}
	for topic, want := range pub {
		if got := id.CanPublish(topic); got != want {
			t.Errorf("%s/%s: CanPublish(%q) = %v, want %v", id.Username, id.ClientID, topic, got, want)
		}
	}
}

func TestACL(t *testing.T) {
	a := newAuth(t, Config{File: writeFile(t, aliceFile(t))})

	t.Run("alice", func(t *testing.T) {
		check(t, login(t, a, "alice", "alice-pw", "alice"), map[string]bool{
			"inbox/alice":          true,
			"$share/g/inbox/alice": true,
			// the attacks
			"inbox/bob":          false,
			"inbox/+":            false,
			"inbox/#":            false,
			"#":                  false,
			"+/alice":            false,
			"+/+":                false,
			"$share/g/inbox/bob": false,
			"$share/g/#":         false,
			"$share/g/inbox/+":   false,
			// the inbox is exactly one topic
			"inbox/alice/#": false,
			"inbox/alice/x": false,
			"inbox":         false,
			// read rules
			"broadcast/#":          true,
			"broadcast":            true, // '#' matches the parent level
			"broadcast/+/x":        true,
			"$share/g/broadcast/a": true,
			"broadcast2":           false,
			"status/alice":         true,
			"status/bob":           false,
			"status/+":             false,
			"status/#":             false,
			"events/alice/x":       false, // write only
			// $ topics and malformed filters
			"$SYS/#":                false,
			"$SYS/broker/uptime":    false,
			"":                      false,
			"$share/g":              false,
			"$share//inbox/alice":   false,
			"$share/g+/inbox/alice": false,
			"$share/g/":             false,
			"$share":                false,
			"inbox/ali+ce":          false,
			"inbox/alice#":          false,
			"#/inbox/alice":         false,
			"inbox/alice\x00":       false,
		}, map[string]bool{
			"inbox/bob":              false,
			"inbox/alice":            false, // the inbox is for reading
			"events/alice/x":         true,
			"events/alice":           true,
			"events/alice/x/y":       true,
			"events/bob/x":           false,
			"events/alice-phone-1/x": false,
			"status/alice":           true,
			"status/bob":             false,
			"broadcast/x":            false,
			"":                       false,
			"events/alice/+":         false,
			"events/alice/#":         false,
			"$SYS/x":                 false,
		})
	})

	t.Run("alice-phone", func(t *testing.T) {
		check(t, login(t, a, "alice", "alice-pw", "alice-phone-1"), map[string]bool{
			"inbox/alice-phone-1": true,
			"inbox/alice":         false,
			"status/alice":        true, // %u is the user, not the client
		}, map[string]bool{
			"events/alice-phone-1/x": true,
			"events/alice/x":         false,
		})
	})

	t.Run("bob", func(t *testing.T) {
		check(t, login(t, a, "bob", "bob-pw", "bob"), map[string]bool{
			"inbox/bob":    true,
			"inbox/alice":  false,
			"broadcast/#":  false, // alice's rule, not bob's
			"status/bob":   true,
			"status/alice": false,
		}, map[string]bool{
			"status/bob":     true,
			"events/bob/x":   false,
			"events/alice/x": false,
		})
	})

	t.Run("ops", func(t *testing.T) {
		check(t, login(t, a, "ops", "ops-pw", "ops-1"), map[string]bool{
			"#":                  true,
			"+/+":                true,
			"$share/g/#":         true,
			"$SYS/#":             true, // named explicitly
			"$SYS/broker/uptime": true,
			"$SYS":               true,
			"$other/x":           false, // '#' does not reach $ topics
			"+/#":                true,
			"$share/g/$SYS/#":    true,
		}, map[string]bool{
			"anything": false,
		})
	})
}

// TestSubstitutionNeverWidens: a client id or username with '/', '+' or '#' (or a leading
// '$') must not turn a rule into a wildcard or a different topic: the rule does not match.
func TestSubstitutionNeverWidens(t *testing.T) {
	file := fmt.Sprintf(`{
  "users": {"eve": {"password": %q, "clients": ["*"], "acl": [{"topic": "dev/%%c/#", "access": "readwrite"}]},
            "a/+": {"password": %q, "clients": ["x"]}},
  "acl": [{"topic": "pub/%%c", "access": "readwrite"}, {"topic": "%%c/data", "access": "read"},
          {"topic": "user/%%u", "access": "read"}]
}`, hashOf(t, "eve-pw"), hashOf(t, "weird-pw"))
	a := newAuth(t, Config{File: writeFile(t, file)})
	for _, client := range []string{"a/#", "#", "+", "a/+", "a/b", "x#", "x+y", "/", "a/"} {
		id := login(t, a, "eve", "eve-pw", client)
		for _, f := range []string{
			"inbox/" + client, "inbox/#", "inbox/+", "inbox/a", "inbox/a/b", "inbox/a/+",
			"dev/" + client + "/#", "dev/#", "dev/+/#", "dev/a/#", "dev/a/b/x",
			"pub/" + client, "pub/#", "pub/+", "pub/a/b", "pub/a",
			client + "/data", "$SYS/data", "#", "+/data", "$SYS/#", "a/data", "a/b/data",
		} {
			if id.CanSubscribe(f) {
				t.Errorf("client %q: CanSubscribe(%q) = true", client, f)
			}
		}
		for _, topic := range []string{"pub/a/b", "pub/a", "dev/a/b/x", "dev/a/x", "pub/x", "dev/x/y"} {
			if id.CanPublish(topic) {
				t.Errorf("client %q: CanPublish(%q) = true", client, topic)
			}
		}
	}
	// a client id "$SYS" keeps its own topics but must not make "%c/data" a $SYS topic
	check(t, login(t, a, "eve", "eve-pw", "$SYS"), map[string]bool{
		"$SYS/data": false, "inbox/$SYS": true, "pub/$SYS": true, "dev/$SYS/#": true,
	}, map[string]bool{"$SYS/data": false, "pub/$SYS": true})
	// a safe id still gets what the rules give
	check(t, login(t, a, "eve", "eve-pw", "e1"), map[string]bool{
		"inbox/e1": true, "dev/e1/#": true, "pub/e1": true, "e1/data": true, "user/eve": true,
	}, map[string]bool{"dev/e1/x": true, "pub/e1": true})
	// a username with '/' and '+' matches no %u rule
	weird := login(t, a, "a/+", "weird-pw", "x")
	check(t, weird, map[string]bool{"user/a/+": false, "user/a/b": false, "user/+": false, "user/#": false,
		"inbox/x": true}, nil)
}

// TestRemovedUserLosesAccess: an identity checks against the rules in force, so a user
// removed from the file (or no longer allowed this client id) loses every permission.
func TestRemovedUserLosesAccess(t *testing.T) {
	path := writeFile(t, aliceFile(t))
	a := newAuth(t, Config{File: path})
	alice := login(t, a, "alice", "alice-pw", "alice-phone-1")
	bob := login(t, a, "bob", "bob-pw", "bob")
	if !alice.CanSubscribe("inbox/alice-phone-1") || !alice.CanPublish("status/alice") {
		t.Fatal("alice lacks her rights before the reload")
	}
	next := fmt.Sprintf(`{"users": {"alice": {"password": %q}}, "acl": [{"topic": "status/%%u", "access": "readwrite"}]}`,
		hashOf(t, "alice-pw"))
	if err := os.WriteFile(path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]*Identity{"alice (client id no longer allowed)": alice, "bob (removed)": bob} {
		if id.CanSubscribe("inbox/"+id.ClientID) || id.CanPublish("status/"+id.Username) {
			t.Errorf("%s keeps access", name)
		}
	}
	check(t, login(t, a, "alice", "alice-pw", "alice"), map[string]bool{"inbox/alice": true, "broadcast/#": false}, nil)
}

func TestZeroIdentityDeniesAll(t *testing.T) {
	var nilID *Identity
	for _, id := range []*Identity{nilID, {}, {Username: "ops", ClientID: "ops", Method: MethodPassword}} {
		if id.CanSubscribe("#") || id.CanSubscribe("inbox/ops") || id.CanPublish("x") {
			t.Errorf("identity %+v grants access", id)
		}
	}
}

// TestProductionCost: New refuses hashes cheaper than cost 10 and accepts cost 10.
func TestProductionCost(t *testing.T) {
	_, err := New(Config{File: writeFile(t, aliceFile(t))})
	if err == nil || !strings.Contains(err.Error(), `user "alice": password hash has bcrypt cost 4; the minimum is 10`) {
		t.Fatalf("New with cost-4 hashes: %v", err)
	}
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), minBcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{File: writeFile(t, fmt.Sprintf(`{"users": {"u": {"password": %q}}}`, h))})
	if err != nil {
		t.Fatal(err)
	}
	login(t, a, "u", "pw", "u")
}

func TestNoFile(t *testing.T) {
	a := newAuth(t, Config{})
	if _, err := a.Authenticate("alice", []byte("pw"), "alice"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("err = %v", err)
	}
	if _, err := a.Authenticate("", nil, "c"); !errors.Is(err, ErrAnonymousNotAllowed) {
		t.Fatalf("err = %v", err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{ReloadInterval: -1}, "ReloadInterval"},
		{Config{InboxPrefix: "inbox/+/"}, "InboxPrefix"},
		{Config{JWT: &JWTConfig{}}, "neither"},
		{Config{JWT: &JWTConfig{HS256Secret: []byte("short")}}, "HS256Secret is 5 bytes"},
		{Config{JWT: &JWTConfig{HS256Secret: make([]byte, 32), Leeway: -1}}, "Leeway"},
		{Config{File: filepath.Join(t.TempDir(), "missing.json")}, "missing.json"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentChecksDuringReload: checks from many goroutines while the file is swapped
// back and forth (run with -race).
func TestConcurrentChecksDuringReload(t *testing.T) {
	path := writeFile(t, aliceFile(t))
	a := newAuth(t, Config{File: path})
	alice := login(t, a, "alice", "alice-pw", "alice")
	files := []string{aliceFile(t), strings.Replace(aliceFile(t), "broadcast/#", "broadcast/x", 1)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !alice.CanSubscribe("inbox/alice") || alice.CanSubscribe("inbox/bob") {
					t.Error("wrong answer during reload")
					return
				}
				alice.CanSubscribe("broadcast/#")
				alice.CanPublish("events/alice/x")
			}
		})
	}
	for i := range 50 {
		if err := os.WriteFile(path, []byte(files[i%2]), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := a.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

// TestOwnProbeTopic: every client may publish to and subscribe to exactly its own probe
// topic, and no other client's; a client whose user was removed loses it with the rest.
func TestOwnProbeTopic(t *testing.T) {
	a := newAuth(t, Config{AllowAnonymous: true})
	id := login(t, a, "", "", "dev1")
	check(t, id, map[string]bool{
		"$switchboard/probe/dev1": true,
		"$switchboard/probe/dev2": false,
		"$switchboard/probe/+":    false,
		"$switchboard/#":          false,
	}, map[string]bool{
		"$switchboard/probe/dev1": true,
		"$switchboard/probe/dev2": false,
	})
	if (&Identity{ClientID: "dev1"}).CanPublish("$switchboard/probe/dev1") {
		t.Fatal("an identity without an authenticator may use the probe topic")
	}
}
