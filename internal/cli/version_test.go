package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboard-mqtt/switchboard/internal/version"
)

func TestVersionCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Run(context.Background(), []string{"version"}, &out, &errOut); code != exitOK {
		t.Fatalf("version: exit %d: %s", code, errOut.String())
	}
	info := version.Get()
	if !strings.HasPrefix(out.String(), "switchboard "+info.Version+"\ncommit "+info.Commit) {
		t.Fatalf("version printed %q", out.String())
	}
	out.Reset()
	if code := Run(context.Background(), []string{"version", "--json"}, &out, &errOut); code != exitOK {
		t.Fatalf("version --json: exit %d: %s", code, errOut.String())
	}
	var got version.Info
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got != info {
		t.Fatalf("version --json: %q (%v), want %+v", out.String(), err, info)
	}
	for _, flag := range []string{"--version", "-version"} {
		out.Reset()
		if code := Run(context.Background(), []string{flag}, &out, &errOut); code != exitOK ||
			!strings.HasPrefix(out.String(), "switchboard "+info.Version+"\n") {
			t.Fatalf("%s: exit %d, printed %q", flag, code, out.String())
		}
	}
	if code := Run(context.Background(), []string{"version", "extra"}, &out, &errOut); code != exitUsage {
		t.Fatalf("version extra: exit %d, want %d", code, exitUsage)
	}
}
