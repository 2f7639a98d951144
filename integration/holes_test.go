package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// authNode is a node with a credentials file (alice, bob), JWT and anonymous access on,
// the file reloaded every 200ms.
type authNode struct {
	*nodeProc
	file   string
	secret []byte
}

func (c *cluster) startAuthNode(t *testing.T, id string) *authNode {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "users.json")
	setPassword(t, file, "alice", "alice-password-1")
	setPassword(t, file, "bob", "bob-password-22")
	grantRule(t, file, "alice", "events/alice/#", "write")
	grantRule(t, file, "bob", "events/#", "read")
	grantRule(t, file, "bob", "chat/#", "read")
	grantRule(t, file, "alice", "chat/#", "write")
	secret := []byte("0123456789abcdef0123456789abcdef-jwt-secret")
	secretFile := filepath.Join(dir, "jwt.secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	n := c.startNode(id, "--auth-file", file, "--jwt-hs256-secret-file", secretFile, "--auth-reload", "200ms")
	return &authNode{nodeProc: n, file: file, secret: secret}
}

func jwtWithID(t *testing.T, secret []byte, sub, jti string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "jti": jti, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// editAuthFile rewrites the credentials file through f.
func editAuthFile(t *testing.T, file string, f func(doc map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	f(doc)
	out, _ := json.MarshalIndent(doc, "", "  ")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestWillRespectsACLs: a Will is a publish like any other. Alice may not set her Will to
// Bob's inbox or to $SYS (CONNACK 0x87 with MQTT 5; 0x05 with MQTT 3.1.1, shown with
// mosquitto_sub), nothing reaches Bob; a Will on a topic she may publish to is sent, without
// the sb-id property she forged. A client's own publishes lose a forged sb-id too.
func TestWillRespectsACLs(t *testing.T) {
	c := newCluster(t)
	n := c.startAuthNode(t, "w1")
	addr := n.member.MQTTAddr
	bob := testenv.ConnectMQTT(t, addr, "bob", testenv.MQTTOptions{CleanStart: true, Username: "bob", Password: []byte("bob-password-22")})
	for _, f := range []string{"inbox/bob", "events/#", "chat/#"} {
		if err := bob.Subscribe(f, 1); err != nil {
			t.Fatal(err)
		}
	}
	forged := map[string]string{"sb-id": "from-the-router", "SB-ID": "honest", "note": "kept"}
	for _, topic := range []string{"inbox/bob", "$SYS/broker/alert", "events/bob/x"} {
		cl, err := testenv.DialMQTT(addr, "alice", testenv.MQTTOptions{CleanStart: true, Username: "alice", Password: []byte("alice-password-1"),
			Will: &paho.WillMessage{Topic: topic, Payload: []byte("forged"), QoS: 1, Retain: true}, WillUser: forged})
		if err == nil {
			cl.Drop()
			t.Fatalf("alice connected with her Will on %s", topic)
		}
		if cl == nil || cl.Connack == nil || cl.Connack.ReasonCode != 0x87 {
			t.Fatalf("Will on %s: %v, want CONNACK 0x87", topic, err)
		}
	}
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command("mosquitto_sub", "-V", "311", "-h", host, "-p", port, "-i", "alice", "-u", "alice", "-P", "alice-password-1",
		"-t", "events/alice/x", "--will-topic", "inbox/bob", "--will-payload", "forged", "--will-retain", "-C", "1", "-W", "5").CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(out)), "not authori") {
		t.Fatalf("mosquitto_sub (3.1.1) with a Will on inbox/bob: %v %q, want a refusal 'not authorised'", err, out)
	}
	select {
	case m := <-bob.Messages():
		t.Fatalf("bob received %q on %s from a refused Will", m.Payload, m.Topic)
	case <-time.After(300 * time.Millisecond):
	}

	// An allowed Will, forged property and all: sent without the node's property.
	alice, err := testenv.DialMQTT(addr, "alice", testenv.MQTTOptions{CleanStart: true, Username: "alice", Password: []byte("alice-password-1"),
		Will: &paho.WillMessage{Topic: "events/alice/status", Payload: []byte("gone"), QoS: 1}, WillUser: forged})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.PublishWith("chat/room", []byte("hi"), 1, forged); err != nil {
		t.Fatal(err)
	}
	alice.Drop()
	got := map[string]testenv.Msg{}
	for len(got) < 2 {
		m, err := bob.Next(5 * time.Second)
		if err != nil {
			t.Fatalf("bob got %v so far: %v", got, err)
		}
		got[m.Topic] = m
	}
	for topic, m := range got {
		if _, bad := m.User["sb-id"]; bad || m.User["SB-ID"] != "" || m.ID != "" {
			t.Fatalf("%s reached bob with a forged sb-id: %v", topic, m.User)
		}
		if m.User["note"] != "kept" {
			t.Fatalf("%s lost its other user properties: %v", topic, m.User)
		}
	}
	if v, _ := metric(n.member.AdminAddr, `switchboard_node_acl_denied_total{action="will"}`); v < 4 {
		t.Fatalf("refused Wills counted %v, want at least 4", v)
	}
}

// TestAnonymousCannotClaimAUsersClientID: with the credentials file and anonymous access
// both on, an anonymous CONNECT as alice is refused (0x85) and Alice's session is untouched;
// an id no user owns is admitted.
func TestAnonymousCannotClaimAUsersClientID(t *testing.T) {
	c := newCluster(t)
	n := c.startAuthNode(t, "a1")
	addr := n.member.MQTTAddr
	alice := testenv.ConnectMQTT(t, addr, "alice", testenv.MQTTOptions{CleanStart: true, Username: "alice", Password: []byte("alice-password-1")})
	if err := alice.Subscribe("inbox/alice", 1); err != nil {
		t.Fatal(err)
	}
	if _, code := dialRaw(t, addr, "alice", "", ""); code != 0x85 {
		t.Fatalf("anonymous as alice: CONNACK %#x, want 0x85", code)
	}
	if _, code := dialRaw(t, addr, "visitor-1", "", ""); code != 0 {
		t.Fatalf("anonymous as visitor-1: CONNACK %#x, want success", code)
	}
	r := c.startRouter("r1")
	var res router.Result
	if code := r.send(t, msgReq{To: "alice", Payload: "still yours"}, &res); code != 200 || res.Status != router.Delivered {
		t.Fatalf("send to alice: %d %+v", code, res)
	}
	if m, err := alice.Next(5 * time.Second); err != nil || m.ID != res.ID {
		t.Fatalf("alice: %+v %v", m, err)
	}
}

// TestRevocationEndsSessions: removing a user from the file ends her live session within
// the reload interval (DISCONNECT 0x87) and nothing directed reaches her after; revoking a
// JWT by jti ends its session and refuses it from then on.
func TestRevocationEndsSessions(t *testing.T) {
	c := newCluster(t)
	n := c.startAuthNode(t, "v1")
	addr := n.member.MQTTAddr
	r := c.startRouter("r1")
	alice := testenv.ConnectMQTT(t, addr, "alice", testenv.MQTTOptions{CleanStart: true, Username: "alice", Password: []byte("alice-password-1")})
	if err := alice.Subscribe("inbox/alice", 1); err != nil {
		t.Fatal(err)
	}
	tok := jwtWithID(t, n.secret, "phone-7", "token-7")
	phone := testenv.ConnectMQTT(t, addr, "phone-7", testenv.MQTTOptions{CleanStart: true, Password: []byte(tok)})
	if err := phone.Subscribe("inbox/phone-7", 1); err != nil {
		t.Fatal(err)
	}
	var res router.Result
	if code := r.send(t, msgReq{To: "alice", Payload: "before"}, &res); code != 200 || res.Status != router.Delivered {
		t.Fatalf("before: %d %+v", code, res)
	}
	if _, err := alice.Next(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	editAuthFile(t, n.file, func(doc map[string]any) {
		delete(doc["users"].(map[string]any), "alice")
		doc["revoked"] = map[string]any{"jti": []string{"token-7"}}
	})
	edited := time.Now()
	for _, cl := range []*testenv.MQTTClient{alice, phone} {
		select {
		case <-cl.Disconnected():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still connected 5s after its credentials were revoked", cl.ID)
		}
	}
	ended := time.Since(edited)
	if alice.DisconnectReason() != 0x87 || phone.DisconnectReason() != 0x87 {
		t.Fatalf("disconnect reasons %#x, %#x; want 0x87", alice.DisconnectReason(), phone.DisconnectReason())
	}
	if code := r.send(t, msgReq{To: "alice", Payload: "after"}, &res); code != 200 || res.Status != router.Queued {
		t.Fatalf("after revocation: %d %+v, want queued (she is gone)", code, res)
	}
	if _, code := dialRaw(t, addr, "phone-7", "", tok); code != 0x86 {
		t.Fatalf("the revoked token: CONNACK %#x, want 0x86", code)
	}
	if _, code := dialRaw(t, addr, "alice", "alice", "alice-password-1"); code != 0x86 {
		t.Fatalf("the removed user: CONNACK %#x, want 0x86", code)
	}
	t.Logf("MEASURED sessions ended %v after the credentials file was edited (reload every 200ms)", ended.Round(time.Millisecond))
	if v, _ := metric(n.member.AdminAddr, "switchboard_node_sessions_revoked_total"); v != 2 {
		t.Fatalf("sessions revoked counted %v, want 2", v)
	}
}

// TestAuthFailureLogIsRateLimited: a flood of bad logins (forged tokens: no bcrypt, so
// they come fast) writes a bounded number of log lines.
func TestAuthFailureLogIsRateLimited(t *testing.T) {
	c := newCluster(t)
	n := c.startAuthNode(t, "l1")
	const tries = 300
	forged := jwtWithID(t, []byte("not-the-secret-not-the-secret-not-the-secret"), "x", "x")
	for i := range tries {
		if _, code := dialRaw(t, n.member.MQTTAddr, "x", "", forged); code == 0 {
			t.Fatalf("forged token %d admitted", i)
		}
	}
	lines := strings.Count(n.Output(), "authentication refused")
	t.Logf("MEASURED %d refused logins wrote %d log lines", tries, lines)
	if lines >= tries/2 {
		t.Fatalf("%d refused logins wrote %d log lines: not rate limited", tries, lines)
	}
}
