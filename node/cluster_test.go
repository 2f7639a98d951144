package node_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/node"
)

// openACL is an authenticator admitting anonymous clients to read and write t/#.
func openACL(t *testing.T) *auth.Authenticator {
	t.Helper()
	file := filepath.Join(t.TempDir(), "acl.json")
	if err := os.WriteFile(file, []byte(`{"acl": [{"topic": "t/#", "access": "readwrite"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{AllowAnonymous: true, File: file})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Two nodes in one process (an in-memory coordinator, one embedded store): a publish on
// one reaches a plain subscriber and one member of a shared group on the other, and a
// retained message reaches a subscriber there after the SUBACK. It runs the cluster's
// goroutines under the race detector in the package's own tests.
func TestClusterPubSubInProcess(t *testing.T) {
	cl := memcoord.NewCluster()
	st := testenv.EmbeddedStore(t)
	var ns []*node.Node
	for i := range 2 {
		cfg := testConfig(t, fmt.Sprintf("pc-%d", i+1))
		cfg.Auth = openACL(t)
		ns = append(ns, startNode(t, cfg, testenv.OpenMemCoord(t, cl), st))
	}
	sub := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "sub", testenv.MQTTOptions{CleanStart: true})
	if err := sub.Subscribe("t/#", 1); err != nil {
		t.Fatal(err)
	}
	member := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "member", testenv.MQTTOptions{CleanStart: true})
	if err := member.Subscribe("$share/g/t/+", 1); err != nil {
		t.Fatal(err)
	}
	pub := testenv.ConnectMQTT(t, ns[1].Member().MQTTAddr, "pub", testenv.MQTTOptions{CleanStart: true})
	const n = 50
	for i := range n {
		if err := pub.Publish("t/x", []byte(fmt.Sprint(i)), 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*testenv.MQTTClient{sub, member} {
		for i := range n {
			m, err := c.Next(10 * time.Second)
			if err != nil {
				t.Fatalf("%s: message %d: %v", c.ID, i, err)
			}
			if string(m.Payload) != fmt.Sprint(i) {
				t.Fatalf("%s: message %d is %q: lost or out of order", c.ID, i, m.Payload)
			}
		}
	}
	if err := pub.PublishRetained("t/kept", []byte("kept"), 1); err != nil {
		t.Fatal(err)
	}
	late := testenv.ConnectMQTT(t, ns[0].Member().MQTTAddr, "late", testenv.MQTTOptions{CleanStart: true})
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		// The retained copy reaches node 1 by the forward; until then a new subscriber
		// finds none.
		if err := late.Subscribe("t/kept", 1); err != nil {
			return err
		}
		m, err := late.Next(200 * time.Millisecond)
		if err != nil {
			return err
		}
		if string(m.Payload) != "kept" || !m.Retain {
			return fmt.Errorf("got %q retain=%v", m.Payload, m.Retain)
		}
		return nil
	})
}
