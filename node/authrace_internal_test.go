package node

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestConnectAuthenticatedBeforeAReloadIsCheckedAgain: a CONNECT authenticated under the
// old credentials waits for the CONNECT lock (held here, as a takeover of the same id
// holds it) while a reload takes its client id away; the pass over the client table that
// follows the reload cannot see it yet (it ends a control client's session meanwhile).
// Once it gets the lock it is refused with 0x85 (client identifier not valid), as a
// CONNECT after the reload is; before, it was admitted and kept its session until the
// next reload.
func TestConnectAuthenticatedBeforeAReloadIsCheckedAgain(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "credentials.json")
	if err := os.WriteFile(file, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{AllowAnonymous: true, File: file})
	if err != nil {
		t.Fatal(err)
	}
	env := newFaultEnv(t)
	cfg := faultConfig(t, "ar-1")
	cfg.Auth = a
	n := startFaultNode(t, cfg, env.coord(t), env.store(t))

	// A connected client the reload revokes too: its DISCONNECT says that the pass has
	// taken its snapshot of the client table.
	control := testenv.ConnectMQTT(t, n.Member().MQTTAddr, "ar-control", testenv.MQTTOptions{CleanStart: true})
	const id = "ar-dev"
	unlock := n.connLocks.lock(id)
	defer unlock()
	type result struct {
		m   *testenv.MQTTClient
		err error
	}
	res := make(chan result, 1)
	go func() {
		m, err := testenv.DialMQTT(n.Member().MQTTAddr, id, testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 20 * time.Second})
		res <- result{m, err}
	}()
	faultWaitFor(t, 10*time.Second, "the CONNECT authenticated and waiting for the lock", func() bool {
		n.connLocks.mu.Lock()
		defer n.connLocks.mu.Unlock()
		return n.connLocks.m[id] != nil && n.connLocks.m[id].refs == 2
	})
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), 10)
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`{"users": {"owner": {"password": %q, "clients": [%q, "ar-control"]}}}`, hash, id)
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-control.Disconnected():
	case <-time.After(10 * time.Second):
		t.Fatal("the reload's pass did not end the control client's session")
	}
	unlock()
	r := <-res
	if r.m != nil {
		t.Cleanup(r.m.Close)
	}
	if r.err == nil {
		t.Fatalf("%s was admitted as anonymous after a reload gave its client id to a user", id)
	}
	if r.m == nil || r.m.Connack == nil || r.m.Connack.ReasonCode != 0x85 {
		var got any = r.err
		if r.m != nil && r.m.Connack != nil {
			got = fmt.Sprintf("CONNACK 0x%02x", r.m.Connack.ReasonCode)
		}
		t.Fatalf("refused with %v, want CONNACK 0x85 (client identifier not valid)", got)
	}
}
