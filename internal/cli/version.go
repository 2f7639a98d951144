package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/switchboard-mqtt/switchboard/internal/version"
)

// runVersion prints the build's version and commit: what a release build stamped with
// -ldflags (scripts/release.sh), or what the Go toolchain recorded.
func runVersion(_ context.Context, e env, args []string) error {
	fs := newFlagSet("version", e)
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	info := version.Get()
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	commit := info.Commit
	if info.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(e.stdout, "switchboard %s\ncommit %s\n%s %s\n", info.Version, commit, info.Go, info.Platform)
	return nil
}
