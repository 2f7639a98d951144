package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-mqtt/switchboard/bench"
	"github.com/switchboard-mqtt/switchboard/router"
)

// TestFieldFlagsRename: a library error that names config fields reads, from the CLI, with
// the flags instead; words that are not mapped fields stay, and the error still unwraps.
func TestFieldFlagsRename(t *testing.T) {
	sentinel := errors.New("inner")
	m := fieldFlags{"HTTP.WriteTimeout": "--write-timeout", "Rate": "--rate"}
	err := m.rename(errors.Join(errors.New("HTTP.WriteTimeout 5s: under MaxMaxWait; Rate 1 (Rated)"), sentinel))
	if got, want := err.Error(), "--write-timeout 5s: under MaxMaxWait; --rate 1 (Rated)\ninner"; got != want {
		t.Fatalf("renamed %q, want %q", got, want)
	}
	if !errors.Is(err, sentinel) {
		t.Fatal("the renamed error does not unwrap to the original")
	}
	// A quoted value is the user's, whatever words it holds.
	if got, want := m.rename(errors.New(`Rate "Rate 1" for HTTP.WriteTimeout "a\"Rate"`)).Error(),
		`--rate "Rate 1" for --write-timeout "a\"Rate"`; got != want {
		t.Fatalf("renamed %q, want %q", got, want)
	}
	plain := errors.New("nothing to rename")
	if m.rename(plain) != plain || m.rename(nil) != nil {
		t.Fatal("an error without fields is not returned as it is")
	}

	cfg := bench.DefaultDirectConfig()
	cfg.Clients = 0
	if msg := benchFlags.rename(cfg.Validate()).Error(); !strings.Contains(msg, "--clients 0") || strings.Contains(msg, "Clients") {
		t.Fatalf("bench error %q does not name --clients", msg)
	}
	rc := router.DefaultConfig()
	rc.HTTP.MaxConnections = 0
	if msg := routerFlags.rename(rc.Validate()).Error(); !strings.Contains(msg, "--max-connections 0") {
		t.Fatalf("router error %q does not name --max-connections", msg)
	}
}
