package bench

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testHook admits every client but "refused-*" ones and allows every topic.
type testHook struct{ mqtt.HookBase }

func (*testHook) ID() string { return "test-allow" }

func (*testHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*testHook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return len(cl.ID) < 8 || cl.ID[:8] != "refused-"
}

func (*testHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// startMochi starts a real mochi broker on 127.0.0.1:0 (with an inline client, so tests can
// publish from the server side) and stops it at cleanup.
func startMochi(t testing.TB) (*mqtt.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(testHook), nil); err != nil {
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
