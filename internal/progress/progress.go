// Package progress draws one status line on a terminal, rewritten in place, for the
// commands that run long enough to leave a user wondering (bench, backends, up's start,
// a quarantine's drain). It draws nothing unless it was given a writer: callers decide
// with IsTerminal (and their --json flag) whether a line is wanted at all.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// clearLine returns the cursor to the start of the line and erases it.
const clearLine = "\r\033[K"

// Line is a status line. Its methods may be called from any goroutine; a Line with a nil
// writer does nothing, so callers need not check.
type Line struct {
	w      io.Writer // nil: every method is a no-op
	status func(elapsed time.Duration) string
	start  time.Time

	mu      sync.Mutex
	text    string // set by Set, shown by the default status
	shown   bool   // a line is on the screen
	stopped bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// IsTerminal reports whether w is a terminal (a character device), where a line redrawn
// in place makes sense; a pipe or file would collect every redraw.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Start returns a line on w that shows status every interval until Stop. A nil status
// shows the last text given to Set followed by the time since Start.
func Start(w io.Writer, interval time.Duration, status func(elapsed time.Duration) string) *Line {
	l := &Line{w: w, status: status, start: time.Now(), stop: make(chan struct{})}
	if w == nil {
		return l
	}
	if l.status == nil {
		l.status = l.textAndElapsed
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.mu.Lock()
				l.draw()
				l.mu.Unlock()
			}
		}
	}()
	return l
}

func (l *Line) textAndElapsed(elapsed time.Duration) string {
	if l.text == "" {
		return ""
	}
	return fmt.Sprintf("%s (%.1fs)", l.text, elapsed.Seconds())
}

// Set changes the text the default status shows and redraws the line at once.
func (l *Line) Set(format string, args ...any) {
	if l.w == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text = fmt.Sprintf(format, args...)
	l.draw()
}

// draw writes the status over the line. l.mu is held.
func (l *Line) draw() {
	if l.stopped {
		return
	}
	s := l.status(time.Since(l.start))
	fmt.Fprint(l.w, clearLine+s)
	l.shown = s != ""
}

// Stop stops redrawing and clears the line. Idempotent.
func (l *Line) Stop() {
	if l.w == nil {
		return
	}
	l.mu.Lock()
	if !l.stopped {
		l.stopped = true
		close(l.stop)
		if l.shown {
			fmt.Fprint(l.w, clearLine)
			l.shown = false
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// Interleave returns a writer for other output to the same terminal (a log): each write
// clears the line first and redraws it after, so the line stays the last one and no
// output is drawn over. Once the line is stopped, writes pass straight to w.
func (l *Line) Interleave(w io.Writer) io.Writer {
	if l.w == nil {
		return w
	}
	return interleaved{l: l, w: w}
}

type interleaved struct {
	l *Line
	w io.Writer
}

func (i interleaved) Write(p []byte) (int, error) {
	i.l.mu.Lock()
	defer i.l.mu.Unlock()
	if i.l.shown {
		fmt.Fprint(i.l.w, clearLine)
		i.l.shown = false
	}
	n, err := i.w.Write(p)
	i.l.draw()
	return n, err
}
