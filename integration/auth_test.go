package integration

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// setPassword runs `switchboard passwd FILE USER` with the password on stdin.
func setPassword(t *testing.T, file, user, password string, extra ...string) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), append([]string{"passwd", file, user, "--password-stdin"}, extra...)...)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("passwd %s: %v\n%s", user, err, out)
	}
}

func str(s string) []byte {
	b := make([]byte, 2, 2+len(s))
	binary.BigEndian.PutUint16(b, uint16(len(s)))
	return append(b, s...)
}

// rawConn is a hand-driven MQTT 5 connection, for packets a library will not send.
type rawConn struct {
	t *testing.T
	c net.Conn
}

// dialRaw connects and sends CONNECT with credentials; it returns the CONNACK reason.
func dialRaw(t *testing.T, addr, id, user, pass string) (*rawConn, byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	flags := byte(0x02) // clean start
	if user != "" {
		flags |= 0x80
	}
	if pass != "" {
		flags |= 0x40
	}
	var body []byte
	body = append(body, str("MQTT")...)
	body = append(body, 5, flags, 0, 30, 0) // v5, flags, keepalive 30, no properties
	body = append(body, str(id)...)
	if user != "" {
		body = append(body, str(user)...)
	}
	if pass != "" {
		body = append(body, str(pass)...)
	}
	if _, err := c.Write(packet(0x10, body)); err != nil {
		t.Fatal(err)
	}
	r := &rawConn{t: t, c: c}
	typ, pk := r.read()
	if typ != 0x20 || len(pk) < 2 {
		t.Fatalf("want CONNACK, got %#x %x", typ, pk)
	}
	return r, pk[1]
}

// packet frames body with its fixed header (remaining length as a variable byte integer).
func packet(first byte, body []byte) []byte {
	out := []byte{first}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

func (r *rawConn) read() (byte, []byte) {
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(r.c, hdr); err != nil {
		return 0, nil
	}
	body := make([]byte, hdr[1])
	if _, err := io.ReadFull(r.c, body); err != nil {
		return 0, nil
	}
	return hdr[0] & 0xF0, body
}

// publish sends a QoS 1 PUBLISH with an optional topic alias and returns the PUBACK reason
// (0 = success), or 0xFF if the connection ended instead.
func (r *rawConn) publish(topic string, alias uint16, pid uint16, payload string) byte {
	var body []byte
	body = append(body, str(topic)...)
	body = binary.BigEndian.AppendUint16(body, pid)
	if alias > 0 {
		body = append(body, 3, 0x23)
		body = binary.BigEndian.AppendUint16(body, alias)
	} else {
		body = append(body, 0)
	}
	body = append(body, payload...)
	if _, err := r.c.Write(packet(0x32, body)); err != nil {
		return 0xFF
	}
	typ, pk := r.read()
	if typ != 0x40 {
		return 0xFF
	}
	if len(pk) < 3 {
		return 0
	}
	return pk[2]
}

// subscribe sends SUBSCRIBE for one filter and returns the SUBACK reason code.
func (r *rawConn) subscribe(filter string, pid uint16) byte {
	var body []byte
	body = binary.BigEndian.AppendUint16(body, pid)
	body = append(body, 0) // no properties
	body = append(body, str(filter)...)
	body = append(body, 1) // QoS 1
	if _, err := r.c.Write(packet(0x82, body)); err != nil {
		return 0xFF
	}
	typ, pk := r.read()
	if typ != 0x90 || len(pk) < 4 {
		return 0xFF
	}
	return pk[3]
}

func jwtFor(t *testing.T, secret []byte, sub string, exp time.Time) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": exp.Unix()}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAuthenticationAndInboxIsolation: refused logins get the right CONNACK code and are
// counted; Alice cannot read or write Bob's inbox by any route, nor take his client id; Bob's
// session is untouched throughout.
func TestAuthenticationAndInboxIsolation(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	authFile := filepath.Join(dir, "users.json")
	setPassword(t, authFile, "alice", "alice-password-1")
	setPassword(t, authFile, "bob", "bob-password-22")
	setPassword(t, authFile, "spy", "spy-password-333")
	grantRead(t, authFile, "spy", "inbox/#") // an operator's tap on every inbox topic
	secret := []byte("0123456789abcdef0123456789abcdef-jwt-secret")
	secretFile := filepath.Join(dir, "jwt.secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freeAddrs(t, 3)
	p := testenv.StartProc(t, "auth-node", append([]string{"node", "--id", "auth-n", "--auth-file", authFile,
		"--jwt-hs256-secret-file", secretFile, "--mqtt", ports[0], "--internal", ports[1], "--admin", ports[2],
		"--data-dir", dir}, c.baseArgs()...)...)
	n := &nodeProc{Proc: p, id: "auth-n"}
	n.member = c.waitMember("auth-n", 30*time.Second, func(_ coord.Member, ok bool) bool { return ok })
	c.waitReady(n.member)
	addr := n.member.MQTTAddr
	r := c.startRouter("r-auth")

	// Bob connects properly and subscribes to his inbox.
	bob := testenv.ConnectMQTT(t, addr, "bob", testenv.MQTTOptions{CleanStart: true, Username: "bob", Password: []byte("bob-password-22")})
	if err := bob.Subscribe("inbox/bob", 1); err != nil {
		t.Fatal(err)
	}

	// Refused logins.
	for _, tc := range []struct {
		name, id, user, pass string
		code                 byte
	}{
		{"wrong password", "alice", "alice", "not-her-password", 0x86},
		{"unknown user", "mallory", "mallory", "whatever-password", 0x86},
		{"no credentials", "anon", "", "", 0x87},
		{"expired JWT", "carol", "", jwtFor(t, secret, "carol", time.Now().Add(-time.Hour)), 0x86},
		{"JWT for another client id", "bob", "", jwtFor(t, secret, "carol", time.Now().Add(time.Hour)), 0x85},
		{"alice with bob's client id", "bob", "alice", "alice-password-1", 0x85},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, code := dialRaw(t, addr, tc.id, tc.user, tc.pass)
			if code != tc.code {
				t.Fatalf("CONNACK %#x, want %#x", code, tc.code)
			}
		})
	}
	if v, _ := metric(n.member.AdminAddr, `switchboard_node_auth_failures_total{reason="bad_credentials"}`); v != 3 {
		t.Fatalf("bad_credentials refusals counted %v, want 3", v)
	}
	if !strings.Contains(n.Output(), "authentication refused") {
		t.Fatal("refused logins are not logged")
	}
	// A valid JWT logs in as the client id in its sub.
	if _, code := dialRaw(t, addr, "carol", "", jwtFor(t, secret, "carol", time.Now().Add(time.Hour))); code != 0 {
		t.Fatalf("valid JWT refused with %#x", code)
	}

	// Alice, logged in, tries every way into Bob's inbox.
	alice, code := dialRaw(t, addr, "alice", "alice", "alice-password-1")
	if code != 0 {
		t.Fatalf("alice refused: %#x", code)
	}
	pid := uint16(1)
	for _, filter := range []string{"inbox/bob", "inbox/+", "inbox/#", "#", "+/bob", "$share/g/inbox/bob"} {
		pid++
		if rc := alice.subscribe(filter, pid); rc != 0x87 {
			t.Fatalf("alice subscribing %q: SUBACK %#x, want 0x87 (not authorized)", filter, rc)
		}
	}
	pid++
	if rc := alice.subscribe("inbox/alice", pid); rc != 1 {
		t.Fatalf("alice's own inbox: SUBACK %#x, want granted QoS 1", rc)
	}
	pid++
	if rc := alice.publish("inbox/bob", 0, pid, "direct"); rc != 0x87 {
		t.Fatalf("alice publishing to inbox/bob: PUBACK %#x, want 0x87", rc)
	}
	// Topic alias: bind alias 1 to her own probe topic (allowed), try to re-bind it to Bob's
	// inbox, then publish through the alias alone.
	pid++
	if rc := alice.publish("$switchboard/probe/alice", 1, pid, "bind"); rc != 0 && rc != 0x10 {
		t.Fatalf("alias bind on an allowed topic: %#x", rc)
	}
	pid++
	if rc := alice.publish("inbox/bob", 1, pid, "rebind"); rc != 0x87 {
		t.Fatalf("alias re-bind to inbox/bob: PUBACK %#x, want 0x87", rc)
	}
	pid++
	alice.publish("", 1, pid, "through the alias")

	// Bob got nothing from Alice, is still connected, and still gets his own messages.
	select {
	case m := <-bob.Messages():
		t.Fatalf("bob received %q from an unauthorized publish", m.Payload)
	case <-bob.Done():
		t.Fatal("bob's session was disturbed")
	default:
	}
	var res router.Result
	if code := r.send(t, msgReq{To: "bob", Payload: "for bob only"}, &res); code != 200 || res.Status != router.Delivered {
		t.Fatalf("send to bob: %d %+v", code, res)
	}
	if m, err := bob.Next(5 * time.Second); err != nil || string(m.Payload) != "for bob only" {
		t.Fatalf("bob: %+v %v", m, err)
	}
	// A directed message goes to its client only: a subscriber allowed to read inbox/# does
	// not receive it.
	spy := testenv.ConnectMQTT(t, addr, "spy", testenv.MQTTOptions{CleanStart: true, Username: "spy", Password: []byte("spy-password-333")})
	if err := spy.Subscribe("inbox/#", 1); err != nil {
		t.Fatal(err)
	}
	r.send(t, msgReq{To: "bob", Payload: "private"}, &res)
	if m, err := bob.Next(5 * time.Second); err != nil || string(m.Payload) != "private" {
		t.Fatalf("bob: %+v %v", m, err)
	}
	select {
	case m := <-spy.Messages():
		t.Fatalf("a subscriber of inbox/# received bob's directed message %q", m.Payload)
	case <-time.After(300 * time.Millisecond):
		// Negative check: nothing announces a message that must not arrive.
	}
	if v, _ := metric(n.member.AdminAddr, `switchboard_node_acl_denied_total{action="subscribe"}`); v < 6 {
		t.Fatalf("denied subscriptions counted %v, want at least 6", v)
	}
	if !bytes.Contains([]byte(n.Output()), []byte("access denied")) {
		t.Fatal("denied access is not logged")
	}
}

// grantRead adds a read rule to a user in an auth file.
func grantRead(t *testing.T, file, user, filter string) { grantRule(t, file, user, filter, "read") }

// grantRule adds a rule (access read, write or readwrite) to a user in an auth file.
func grantRule(t *testing.T, file, user, filter, access string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	u := doc["users"].(map[string]any)[user].(map[string]any)
	rules, _ := u["acl"].([]any)
	u["acl"] = append(rules, map[string]any{"topic": filter, "access": access})
	out, _ := json.MarshalIndent(doc, "", "  ")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// freeAddrs returns n free 127.0.0.1 addresses.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	ports, err := backends.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, n)
	for i, p := range ports {
		out[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	return out
}
