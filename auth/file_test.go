package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestParseErrors(t *testing.T) {
	h := hashOf(t, "pw")
	for _, tc := range []struct {
		name, file string
		want       []string // all must appear in the error
	}{
		{"plaintext", `{"users": {"alice": {"password": "hunter2"}}}`,
			[]string{"auth.json", `user "alice"`, "not a bcrypt hash", "plaintext"}},
		{"missing password", `{"users": {"alice": {}}}`, []string{`user "alice"`, "password is missing"}},
		{"unknown user field", `{"users": {"alice": {"password": "x", "pasword": "y"}}}`,
			[]string{"auth.json:1:", `user "alice"`, `unknown field "pasword"`}},
		{"field case", `{"users": {"alice": {"Password": "x"}}}`, []string{`unknown field "Password"`}},
		{"unknown top field", `{"user": {}}`, []string{`unknown field "user"`}},
		{"unknown rule field", `{"acl": [{"topic": "a", "access": "read", "qos": 1}]}`,
			[]string{"acl rule 0", `unknown field "qos"`}},
		{"duplicate user", `{"users": {"alice": {"password": "x"}, "alice": {"password": "y"}}}`,
			[]string{`key "alice" appears twice`}},
		{"duplicate field", `{"acl": [], "acl": []}`, []string{`key "acl" appears twice`}},
		{"bad access", `{"acl": [{"topic": "a"}, {"topic": "b", "access": "all"}]}`,
			[]string{"acl rule 0", "access is missing"}},
		{"bad access 2", `{"acl": [{"topic": "b", "access": "all"}]}`, []string{"acl rule 0", `access "all"`}},
		{"bad topic", fmt.Sprintf(`{"users": {"bob": {"password": %q, "acl": [{"topic": "a/b", "access": "read"}, {"topic": "a/#/b", "access": "read"}]}}}`, h),
			[]string{`user "bob"`, "acl rule 1", "a/#/b", "last level"}},
		{"bad placeholder", `{"acl": [{"topic": "a/%x", "access": "read"}]}`, []string{"acl rule 0", "%u, %c"}},
		{"share rule", `{"acl": [{"topic": "$share/g/a", "access": "read"}]}`, []string{"acl rule 0", "$share"}},
		{"empty topic", `{"acl": [{"topic": "", "access": "read"}]}`, []string{"acl rule 0", "empty"}},
		{"star in middle", fmt.Sprintf(`{"users": {"alice": {"password": %q, "clients": ["a*b"]}}}`, h),
			[]string{`user "alice"`, "clients[0]", "last character"}},
		{"empty clients", fmt.Sprintf(`{"users": {"alice": {"password": %q, "clients": []}}}`, h),
			[]string{`user "alice"`, "clients is empty"}},
		{"wrong type", `{"users": {"alice": {"password": 12}}}`, []string{`user "alice": password: want a string, got a number`}},
		{"null", `{"users": null}`, []string{"users: want an object, got null"}},
		{"array top", `[]`, []string{"want an object"}},
		{"empty", ``, []string{"empty"}},
		{"trailing", `{} {}`, []string{"unexpected data"}},
		{"syntax", "{\n  \"acl\": [\n    {\"topic\": \"a\",, }\n  ]\n}", []string{"auth.json:3:", "invalid character"}},
		{"truncated", `{"users": {"alice": {`, []string{"unexpected end"}},
		{"empty username", fmt.Sprintf(`{"users": {"": {"password": %q}}}`, h), []string{`user ""`, "username is empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseRuleSet("/etc/switchboard/auth.json", []byte(tc.file), testCost)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	h := hashOf(t, "pw")
	file := fmt.Sprintf(`{
  "users": {
    "alice": {"password": %q, "clients": ["alice", "alice-phone-*"],
              "acl": [{"topic": "events/%%c/#", "access": "write"}, {"topic": "broadcast/#", "access": "read"}]},
    "bob": {"password": %q, "acl": []}
  },
  "acl": [{"topic": "status/%%u", "access": "readwrite"}]
}`, h, h)
	rs, err := parseRuleSet("f", []byte(file), testCost)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.users) != 2 || len(rs.read) != 1 || len(rs.write) != 1 {
		t.Fatalf("rule set %+v", rs)
	}
	alice := rs.users["alice"]
	if len(alice.read) != 1 || len(alice.write) != 1 || len(alice.clients) != 2 {
		t.Fatalf("alice %+v", alice)
	}
	if bob := rs.users["bob"]; len(bob.clients) != 1 || bob.clients[0].text != "%u" || bob.read != nil {
		t.Fatalf("bob %+v", bob)
	}
	for _, ok := range []string{`{}`, `{"users": {}, "acl": []}`, " {}\n"} {
		if _, err := parseRuleSet("f", []byte(ok), testCost); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword([]byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := bcrypt.Cost([]byte(h)); err != nil || c != hashCost {
		t.Fatalf("cost %d, %v", c, err)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret")) != nil {
		t.Fatal("hash does not verify")
	}
	for _, bad := range [][]byte{nil, {}, make([]byte, 73)} {
		if _, err := HashPassword(bad); err == nil {
			t.Errorf("HashPassword(%d bytes) = nil error", len(bad))
		}
	}
}

func TestSetPassword(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub-is-not-created", "auth.json")
	if err := setUser(path, "alice", []byte("pw"), nil, testCost); err == nil {
		t.Fatal("SetPassword into a missing directory succeeded")
	}

	// a new file
	path = filepath.Join(dir, "auth.json")
	if err := setUser(path, "alice", []byte("alice-pw"), nil, testCost); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := validateFile(path, testCost); err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, Config{File: path})
	if !reflect.DeepEqual(a.rules.Load().users["alice"].clients, []clientPattern{{text: "%u"}}) {
		t.Fatalf("default clients not applied")
	}

	// keeps other users and rules; replaces one; sets clients
	other := fmt.Sprintf(`{"users": {"bob": {"password": %q, "acl": [{"topic": "b/#", "access": "read"}]},
	  "alice": {"password": "plaintext-is-repaired"}},
	  "acl": [{"topic": "status/%%u", "access": "readwrite"}]}`, hashOf(t, "bob-pw"))
	if err := os.WriteFile(path, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := validateFile(path, testCost); err == nil {
		t.Fatal("plaintext file validated")
	}
	if err := setUser(path, "alice", []byte("new-pw"), []string{"alice", "alice-*"}, testCost); err != nil {
		t.Fatal(err)
	}
	if err := validateFile(path, testCost); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	fd, err := decodeFile(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if fd.Users["bob"].Password != hashOf(t, "bob-pw") || len(fd.Users["bob"].ACL) != 1 || len(fd.ACL) != 1 {
		t.Fatalf("other entries lost:\n%s", data)
	}
	if got := fd.Users["alice"].Clients; !reflect.DeepEqual(got, []string{"alice", "alice-*"}) {
		t.Fatalf("clients %v", got)
	}
	if bcrypt.CompareHashAndPassword([]byte(fd.Users["alice"].Password), []byte("new-pw")) != nil {
		t.Fatal("new password does not verify")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v after rewrite, want 0600", fi.Mode().Perm())
	}
	// clients kept when not given
	if err := setUser(path, "alice", []byte("third-pw"), nil, testCost); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	if fd, _ = decodeFile(path, data); !reflect.DeepEqual(fd.Users["alice"].Clients, []string{"alice", "alice-*"}) {
		t.Fatalf("clients not kept:\n%s", data)
	}
	// no temporary files left
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want 1", len(entries))
	}

	// refusals leave the file alone
	before, _ := os.ReadFile(path)
	for name, err := range map[string]error{
		"empty password": setUser(path, "alice", nil, nil, testCost),
		"bad clients":    setUser(path, "alice", []byte("x"), []string{"a*b"}, testCost),
		"empty clients":  setUser(path, "alice", []byte("x"), []string{}, testCost),
		"bad user":       setUser(path, "", []byte("x"), nil, testCost),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"users": {"x": {"pw": 1}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := setUser(filepath.Join(dir, "broken.json"), "alice", []byte("x"), nil, testCost); err == nil ||
		!strings.Contains(err.Error(), `unknown field "pw"`) {
		t.Errorf("SetPassword on a malformed file: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("a refused SetUser changed the file")
	}
}

func TestSetPasswordFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.json")
	link := filepath.Join(dir, "link.json")
	if err := os.WriteFile(target, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Skip(err)
	}
	if err := setUser(link, "alice", []byte("pw"), nil, testCost); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v", err)
	}
	if err := validateFile(target, testCost); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(target); errors.Is(err, os.ErrNotExist) {
		t.Fatal("target gone")
	}
}
