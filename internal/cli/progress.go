package cli

import (
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/progress"
)

// startProgress returns the status line of a long-running command: on stderr when it is a
// terminal, and never in --json mode (asJSON) or when stderr is a pipe or a file, where
// the line's redraws would only be noise. Set changes its text; Stop erases it.
func startProgress(e env, asJSON bool) *progress.Line {
	if asJSON || !progress.IsTerminal(e.stderr) {
		return progress.Start(nil, 0, nil)
	}
	return progress.Start(e.stderr, 100*time.Millisecond, nil)
}
