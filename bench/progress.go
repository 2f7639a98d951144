package bench

import (
	"io"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/progress"
)

// startProgress calls line every interval and writes the result over the previous line
// (the CLI's shared status line); a nil writer makes it a no-op, so callers need not check.
func startProgress(w io.Writer, interval time.Duration, line func(elapsed time.Duration) string) *progress.Line {
	return progress.Start(w, interval, line)
}

// rateMeter turns a growing counter into a per-second rate between calls.
type rateMeter struct {
	last  int64
	lastT time.Time
}

func (r *rateMeter) rate(v int64) float64 {
	now := time.Now()
	var out float64
	if !r.lastT.IsZero() {
		if d := now.Sub(r.lastT).Seconds(); d > 0 {
			out = float64(v-r.last) / d
		}
	}
	r.last, r.lastT = v, now
	return out
}
