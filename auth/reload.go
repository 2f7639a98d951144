package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"time"
)

// Start follows the file: every ReloadInterval it checks the file's mtime and size (and,
// while the mtime is recent enough that a same-size rewrite within the filesystem's
// timestamp granularity could hide, its SHA-256) and loads it when it changed. A file that
// is missing or invalid is logged and the rules in force are kept. The poller stops when
// ctx ends; Wait waits for it. Start without a file, or a second Start, does nothing.
func (a *Authenticator) Start(ctx context.Context) {
	if a.cfg.File == "" {
		return
	}
	a.startOnce.Do(func() {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.poll(ctx)
		}()
	})
}

// Wait blocks until the poller started by Start has stopped (after its ctx ended). It
// returns at once if Start was not called.
func (a *Authenticator) Wait() { a.wg.Wait() }

// Reload reads and loads the file now. When the file is unreadable or invalid it returns
// the error and the rules in force are kept. Loading an unchanged file does nothing.
func (a *Authenticator) Reload() error {
	if a.cfg.File == "" {
		return nil
	}
	data, err := readFile(a.cfg.File)
	if err != nil {
		return err
	}
	_, err = a.load(data)
	return err
}

// load compiles data and swaps it in unless it equals the rules in force. changed tells
// whether a new rule set was installed.
func (a *Authenticator) load(data []byte) (changed bool, err error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if sha256.Sum256(data) == a.rules.Load().sum {
		return false, nil
	}
	rs, err := parseRuleSet(a.cfg.File, data, a.minCost)
	if err != nil {
		return false, err
	}
	a.rules.Store(rs)
	a.loads.Update(func(n uint64) uint64 { return n + 1 })
	a.cfg.Logger.Info("auth file loaded", "file", a.cfg.File, "users", len(rs.users),
		"read_rules", len(rs.read), "write_rules", len(rs.write))
	return true, nil
}

// fileStamp is what a poll compares to notice a change without reading the file.
type fileStamp struct {
	mtime time.Time
	size  int64
}

func (a *Authenticator) poll(ctx context.Context) {
	log := a.cfg.Logger.With("file", a.cfg.File)
	var (
		last     fileStamp
		readAt   time.Time         // when the file was last read
		badSum   [sha256.Size]byte // the content that last failed, so it is logged once
		statFail bool
	)
	t := time.NewTicker(a.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(a.cfg.File)
		if err != nil {
			if !statFail {
				log.Error("auth file unreadable; keeping the rules in force", "err", err)
			}
			statFail = true
			continue
		}
		statFail = false
		st := fileStamp{mtime: fi.ModTime(), size: fi.Size()}
		// An mtime at or after the last read (minus a margin for coarse timestamps) means
		// the file may have changed again since without the stamp showing it.
		if st == last && st.mtime.Before(readAt.Add(-2*time.Second)) {
			continue
		}
		data, err := readFile(a.cfg.File)
		if err != nil {
			log.Error("auth file unreadable; keeping the rules in force", "err", err)
			continue
		}
		last, readAt = st, time.Now()
		sum := sha256.Sum256(data)
		if sum == badSum {
			continue
		}
		if _, err := a.load(data); err != nil {
			badSum = sum
			log.Error("auth file invalid; keeping the rules in force", "err", err)
		}
	}
}

// readLimited reads r up to limit bytes, failing if there is more.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}
