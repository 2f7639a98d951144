package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond every few milliseconds until it returns nil or d passes.
func waitFor(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logRecorder is a slog.Handler that keeps the messages it receives.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.msgs = append(l.msgs, b.String())
	l.mu.Unlock()
	return nil
}

// count returns how many messages contain s.
func (l *logRecorder) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// startPolling starts a's poller and stops it (and waits for it) at cleanup.
func startPolling(t *testing.T, a *Authenticator) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a.Start(ctx)
	a.Start(ctx) // a second Start does nothing
	t.Cleanup(func() {
		cancel()
		a.Wait()
	})
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestStartReloadsOnChange(t *testing.T) {
	path := writeFile(t, aliceFile(t))
	logs := &logRecorder{}
	a := newAuth(t, Config{File: path, ReloadInterval: 10 * time.Millisecond, Logger: slog.New(logs)})
	startPolling(t, a)
	alice := login(t, a, "alice", "alice-pw", "alice")
	if alice.CanSubscribe("news/#") || !alice.CanSubscribe("broadcast/#") {
		t.Fatal("unexpected rules before the change")
	}

	// a new rule appears, an old one goes
	mustWrite(t, path, strings.Replace(aliceFile(t), "broadcast/#", "news/#", 1))
	waitFor(t, 5*time.Second, func() error {
		if !alice.CanSubscribe("news/#") || alice.CanSubscribe("broadcast/#") {
			return errors.New("the new rules are not in effect")
		}
		return nil
	})

	// a broken file is logged, naming the user and the problem, and the rules in force are
	// kept. (The poller may also catch the file half written — os.WriteFile truncates
	// first — and log that as invalid too: the wait is for the complete file's error.)
	mustWrite(t, path, `{"users": {"alice": {"password": "plaintext"}}}`)
	waitFor(t, 5*time.Second, func() error {
		if logs.count(`user "alice": password is not a bcrypt hash`) == 0 {
			return errors.New("the broken file was not noticed, or the log does not name the user and the problem")
		}
		return nil
	})
	if logs.count("auth file invalid") == 0 {
		t.Error("the broken file was not logged as invalid")
	}
	if !alice.CanSubscribe("news/#") || !alice.CanSubscribe("inbox/alice") {
		t.Fatal("a broken file changed the rules")
	}
	if _, err := a.Authenticate("alice", []byte("alice-pw"), "alice"); err != nil {
		t.Fatalf("alice refused after a broken reload: %v", err)
	}

	// a deleted file too
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if logs.count("auth file unreadable") == 0 {
			return errors.New("the missing file was not noticed")
		}
		return nil
	})
	if !alice.CanSubscribe("news/#") {
		t.Fatal("a missing file changed the rules")
	}

	// and a good file again is loaded
	mustWrite(t, path, strings.Replace(aliceFile(t), "broadcast/#", "sports/#", 1))
	waitFor(t, 5*time.Second, func() error {
		if !alice.CanSubscribe("sports/#") || alice.CanSubscribe("news/#") {
			return errors.New("the repaired file is not in effect")
		}
		return nil
	})
}

// TestStartSameSizeSameMtime: a rewrite that keeps the size and the mtime (a coarse
// timestamp) is still noticed through the content hash.
func TestStartSameSizeSameMtime(t *testing.T) {
	path := writeFile(t, aliceFile(t))
	a := newAuth(t, Config{File: path, ReloadInterval: 10 * time.Millisecond})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	startPolling(t, a)
	alice := login(t, a, "alice", "alice-pw", "alice")
	next := strings.Replace(aliceFile(t), "broadcast/#", "broadcast/+", 1) // same length
	if len(next) != int(fi.Size()) {
		t.Fatalf("sizes differ: %d, %d", len(next), fi.Size())
	}
	mustWrite(t, path, next)
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if alice.CanSubscribe("broadcast/#") || !alice.CanSubscribe("broadcast/+") {
			return errors.New("the same-size rewrite was not noticed")
		}
		return nil
	})
}

func TestReloadKeepsOldOnError(t *testing.T) {
	path := writeFile(t, aliceFile(t))
	a := newAuth(t, Config{File: path})
	old := a.rules.Load()
	if err := a.Reload(); err != nil || a.rules.Load() != old {
		t.Fatalf("reloading an unchanged file: %v, swapped %v", err, a.rules.Load() != old)
	}
	mustWrite(t, path, `{"acl": [{"topic": "a/#/b", "access": "read"}]}`)
	err := a.Reload()
	if err == nil || !strings.Contains(err.Error(), "acl rule 0") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Reload = %v", err)
	}
	if a.rules.Load() != old {
		t.Fatal("a broken file replaced the rules")
	}
	os.Remove(path)
	if err := a.Reload(); err == nil {
		t.Fatal("Reload of a missing file succeeded")
	}
	login(t, a, "alice", "alice-pw", "alice")
}

func TestStartWithoutFile(t *testing.T) {
	a := newAuth(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	a.Start(ctx)
	cancel()
	a.Wait()
}
