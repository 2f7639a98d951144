package bench

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress redraws one status line on a terminal every interval until stopped, then clears
// it. A nil writer makes it a no-op, so callers need not check.
type progress struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

// startProgress calls line every interval and writes the result over the previous line.
func startProgress(w io.Writer, interval time.Duration, line func(elapsed time.Duration) string) *progress {
	p := &progress{stop: make(chan struct{})}
	if w == nil {
		return p
	}
	start := time.Now()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprintf(w, "\r\033[K%s", line(time.Since(start)))
			}
		}
	}()
	return p
}

// Stop stops and clears the line. Idempotent.
func (p *progress) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
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
