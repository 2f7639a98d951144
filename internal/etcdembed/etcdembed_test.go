package etcdembed_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/etcdembed"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// The member's logs reach the logger given to Start: etcd writes why it ends the process
// (a full disk, a damaged database) only there, and `switchboard up` once exited with
// status 1 and not a word.
func TestServerLogsReachTheLogger(t *testing.T) {
	var out testenv.Buffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := etcdembed.Start(ctx, t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if !strings.Contains(out.String(), "source=etcd-server") {
		t.Fatalf("nothing of the member's reached the logger:\n%.2000s", out.String())
	}
}

// TestCloseLogsNoErrors: stopping the member writes nothing at the default level; etcd's
// complaints that its listeners closed, four ERROR lines on every stop of `up`, are debug.
func TestCloseLogsNoErrors(t *testing.T) {
	var out testenv.Buffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := etcdembed.Start(ctx, t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	started := out.String()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if stop := strings.TrimPrefix(out.String(), started); stop != "" {
		t.Fatalf("the stop logged at the default level:\n%s", stop)
	}
}
