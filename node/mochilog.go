package node

import (
	"context"
	"errors"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiLogger is the logger handed to mochi. mochi logs every packet it refuses as
// "error processing packet" at WARN with the whole packet struct (payload, properties,
// every field), so one client refused by an ACL writes a screenful per packet, unthrottled,
// beside the node's own throttled "access denied" line. Here a packet is logged as its
// type and id only; a refusal the client was answered with (an MQTT reason code, also
// one the node's OnPublish gave, which mochi logs as an ERROR) goes to DEBUG, and mochi's start and stop chatter goes to DEBUG too (the node logs its own start
// with its addresses). So does its warning to each client whose keep-alive is 5 s or less:
// keep-alive 0 (none) is ordinary MQTT, and a reconnect storm of such clients wrote a WARN
// line each, unthrottled.
func mochiLogger(log *slog.Logger) *slog.Logger {
	return slog.New(mochiHandler{h: log.Handler()})
}

// mochiHandler rewrites mochi's records before the node's handler sees them.
type mochiHandler struct{ h slog.Handler }

// mochiChatter reports whether msg is one of mochi's INFO messages about its own life
// cycle.
func mochiChatter(msg string) bool {
	switch msg {
	case "added hook", "attached listener", "mochi mqtt starting", "mochi mqtt server started",
		"gracefully stopping server", "mochi mqtt server stopped", "stopping hook":
		return true
	}
	return false
}

func (m mochiHandler) Enabled(ctx context.Context, l slog.Level) bool { return m.h.Enabled(ctx, l) }

func (m mochiHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return mochiHandler{h: m.h.WithAttrs(as)}
}

func (m mochiHandler) WithGroup(name string) slog.Handler {
	return mochiHandler{h: m.h.WithGroup(name)}
}

func (m mochiHandler) Handle(ctx context.Context, r slog.Record) error {
	level := r.Level
	switch {
	case mochiChatter(r.Message) && level == slog.LevelInfo, r.Message == mqtt.ErrMinimumKeepalive.Error():
		level = slog.LevelDebug
	}
	out := slog.NewRecord(r.Time, level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if pk, ok := a.Value.Any().(packets.Packet); ok && a.Value.Kind() == slog.KindAny {
			out.AddAttrs(slog.String("packet", packetName(pk)))
			if pk.PacketID != 0 {
				out.AddAttrs(slog.Int("packet_id", int(pk.PacketID)))
			}
			return true
		}
		if err, ok := a.Value.Any().(error); ok && a.Key == "error" &&
			(r.Message == "error processing packet" || r.Message == "publish packet error") {
			var code packets.Code
			if errors.As(err, &code) {
				out.Level = min(out.Level, slog.LevelDebug)
			}
		}
		out.AddAttrs(a)
		return true
	})
	if out.Level != r.Level && !m.h.Enabled(ctx, out.Level) {
		return nil
	}
	return m.h.Handle(ctx, out)
}

func packetName(pk packets.Packet) string {
	if s, ok := packets.PacketNames[pk.FixedHeader.Type]; ok {
		return s
	}
	return "unknown"
}
