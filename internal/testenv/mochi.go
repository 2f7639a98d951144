package testenv

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiHook admits every client but "refused-*" ones and allows every topic, so a test can
// provoke a refused CONNACK by its client id alone.
type mochiHook struct{ mqtt.HookBase }

func (*mochiHook) ID() string { return "testenv-allow" }

func (*mochiHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*mochiHook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return !strings.HasPrefix(cl.ID, "refused-")
}

func (*mochiHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// StartMochi starts a bare mochi broker on 127.0.0.1:0 (with an inline client, so a test
// can publish from the server side), for testing MQTT clients without a Switchboard node.
// It stops the broker at cleanup.
func StartMochi(t testing.TB) (*mqtt.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(mochiHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewNet("t", l)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// mochi's Close read-locks its client table twice (GetByListener calls Len): a
		// client removing itself in between deadlocks it. Let disconnecting clients finish.
		deadline := time.Now().Add(5 * time.Second)
		for srv.Clients.Len() > 1 && time.Now().Before(deadline) { // the inline client stays
			time.Sleep(5 * time.Millisecond)
		}
		_ = srv.Close()
	})
	return srv, l.Addr().String()
}
