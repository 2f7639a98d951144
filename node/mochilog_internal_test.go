package node

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

func mochiLogTo(level slog.Level) (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level})
	return mochiLogger(slog.New(h).With("component", "mqtt")), &buf
}

// TestMochiLoggerPacketRefusal: mochi's "error processing packet" for a refusal answered
// with a reason code (an ACL denial) is DEBUG and names the packet by type and id, never
// its payload; at the default level it is not written at all.
func TestMochiLoggerPacketRefusal(t *testing.T) {
	t.Parallel()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 7,
		TopicName: "inbox/bob", Payload: []byte("SECRET-PAYLOAD")}
	log, buf := mochiLogTo(slog.LevelInfo)
	log.Warn("error processing packet", "error", packets.ErrNotAuthorized, "client", "alice", "listener", "mqtt", "pk", pk)
	if buf.Len() != 0 {
		t.Fatalf("an ACL refusal is logged at the default level: %s", buf)
	}
	log, buf = mochiLogTo(slog.LevelDebug)
	log.Warn("error processing packet", "error", packets.ErrNotAuthorized, "client", "alice", "pk", pk)
	got := buf.String()
	for _, want := range []string{"level=DEBUG", "component=mqtt", "packet=Publish", "packet_id=7", "client=alice", "not authorized"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "SECRET-PAYLOAD") || strings.Contains(got, "inbox/bob") || strings.Contains(got, "pk=") {
		t.Errorf("the packet struct is logged: %s", got)
	}
	// A refusal the node's OnPublish answered with a reason code: mochi's ERROR is DEBUG too.
	log, buf = mochiLogTo(slog.LevelInfo)
	log.Error("publish packet error", "error", packets.ErrPayloadFormatInvalid, "hook", "switchboard", "packet", pk)
	if buf.Len() != 0 {
		t.Fatalf("a refusal answered with 0x99 is logged at the default level: %s", buf)
	}
}

// TestMochiLoggerOtherErrors: an error that is not a reason code stays a WARN, still
// without the packet struct.
func TestMochiLoggerOtherErrors(t *testing.T) {
	t.Parallel()
	log, buf := mochiLogTo(slog.LevelInfo)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, Payload: []byte("SECRET-PAYLOAD")}
	log.Warn("error processing packet", "error", errors.New("write: broken pipe"), "pk", pk)
	got := buf.String()
	if !strings.Contains(got, "level=WARN") || !strings.Contains(got, "packet=Subscribe") || strings.Contains(got, "SECRET-PAYLOAD") {
		t.Fatalf("got %q", got)
	}
	if strings.Contains(got, "packet_id") {
		t.Fatalf("a packet without an id logs one: %q", got)
	}
}

// TestMochiLoggerChatter: mochi's start and stop lines are DEBUG; its other lines keep
// their level.
func TestMochiLoggerChatter(t *testing.T) {
	t.Parallel()
	log, buf := mochiLogTo(slog.LevelInfo)
	log.Info("attached listener", "id", "mqtt", "address", "127.0.0.1:1883")
	log.Info("mochi mqtt server started")
	if buf.Len() != 0 {
		t.Fatalf("start-up chatter at INFO: %s", buf)
	}
	log.Warn("client store quota reached", "client", "c1")
	if !strings.Contains(buf.String(), "level=WARN") {
		t.Fatalf("other warnings are lost: %q", buf)
	}
	log, buf = mochiLogTo(slog.LevelDebug)
	log.Info("attached listener", "id", "mqtt")
	if !strings.Contains(buf.String(), "level=DEBUG") || !strings.Contains(buf.String(), "attached listener") {
		t.Fatalf("chatter at debug: %q", buf)
	}
}

// TestMochiLoggerKeepaliveWarning: mochi's warning to each client with a short or no
// keep-alive is DEBUG, so a storm of such clients writes nothing at the default level.
func TestMochiLoggerKeepaliveWarning(t *testing.T) {
	t.Parallel()
	log, buf := mochiLogTo(slog.LevelInfo)
	for i := range 100 {
		log.Warn(mqtt.ErrMinimumKeepalive.Error(), "client", fmt.Sprint("dev-", i), "keepalive", 0, "recommended", 5)
	}
	if buf.Len() != 0 {
		t.Fatalf("keep-alive warnings at the default level: %s", buf)
	}
	log, buf = mochiLogTo(slog.LevelDebug)
	log.Warn(mqtt.ErrMinimumKeepalive.Error(), "client", "dev-1", "keepalive", 0)
	if got := buf.String(); !strings.Contains(got, "level=DEBUG") || !strings.Contains(got, "client=dev-1") {
		t.Fatalf("at DEBUG: %q", got)
	}
}
