package node

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestAuditDiscardsOfflineSessionsOfClientsConnectedElsewhere: a client whose connection
// to one node dropped, leaving a session (and a delayed Will) there, connects to another
// node. Once two audit passes in a row found it there, the first node discards the offline
// session and its Will, so it queues nothing more and a CONNECT back there finds no
// session [MQTT-3.1.2-4]; before, the session was kept until it expired and resumed. An
// offline session whose client is connected nowhere is kept.
func TestAuditDiscardsOfflineSessionsOfClientsConnectedElsewhere(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	rules := filepath.Join(t.TempDir(), "acl.json")
	if err := os.WriteFile(rules, []byte(`{"acl": [{"topic": "t/#", "access": "readwrite"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	acl, err := auth.New(auth.Config{AllowAnonymous: true, File: rules})
	if err != nil {
		t.Fatal(err)
	}
	var ns []*Node
	for i := range 2 {
		cfg := faultConfig(t, fmt.Sprintf("od-%d", i+1))
		cfg.AuditInterval = 0 // the test runs the passes itself
		cfg.Auth = acl
		ns = append(ns, startFaultNode(t, cfg, env.coord(t), env.store(t)))
	}
	a, b := ns[0], ns[1]
	ctx := testenv.Context(t, 30*time.Second)
	first := testenv.ConnectMQTT(t, a.Member().MQTTAddr, "od-c", testenv.MQTTOptions{
		SessionExpiry: 600, WillDelay: 600, Will: &paho.WillMessage{Topic: "t/od/will", Payload: []byte("gone"), QoS: 1},
	})
	if err := first.Subscribe("t/od", 1); err != nil {
		t.Fatal(err)
	}
	first.Drop()
	faultWaitFor(t, 5*time.Second, "the session offline on the first node, its Will held", func() bool {
		return len(a.offlineSessions()) == 1 && a.wills.len() == 1
	})
	a.auditPass(ctx)
	if len(a.offlineSessions()) != 1 || a.wills.len() != 1 {
		t.Fatal("an offline session whose client is connected nowhere was discarded")
	}

	second := testenv.ConnectMQTT(t, b.Member().MQTTAddr, "od-c", testenv.MQTTOptions{CleanStart: true})
	a.auditPass(ctx)
	if _, ok := a.mqtt.Clients.Get("od-c"); !ok {
		t.Fatal("discarded at the first pass that found the client elsewhere (a node registered again may reassert a taken-over session for a moment)")
	}
	a.auditPass(ctx)
	if _, ok := a.mqtt.Clients.Get("od-c"); ok {
		t.Fatal("the first node still holds the session of a client connected on the second")
	}
	if a.wills.len() != 0 {
		t.Fatal("the discarded session's delayed Will is still held")
	}
	second.Close()
	back := testenv.ConnectMQTT(t, a.Member().MQTTAddr, "od-c", testenv.MQTTOptions{SessionExpiry: 600})
	if back.Connack.SessionPresent {
		t.Fatal("a CONNECT back on the first node resumed the session it held before the client's Clean Start elsewhere")
	}
}
