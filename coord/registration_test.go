package coord_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/internal/notify"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// fakeSession's standing is whatever the test sets.
type fakeSession struct {
	st notify.Value[coord.Standing]
}

func (s *fakeSession) Standing(time.Time) coord.Standing {
	st, changed := s.st.Get()
	st.Changed = [2]<-chan struct{}{changed}
	return st
}

// fakeEntry hands out one session at a time and an epoch per create; the entry is never
// gone by itself, and the mark is whatever the test set when it is looked at.
type fakeEntry struct {
	mu      sync.Mutex
	sess    *fakeSession
	mark    *coord.Quarantine
	epoch   atomic.Int64
	retired atomic.Int32
	proceed chan struct{} // Retire waits for one, so the test sees Fenced before it ends
}

func (e *fakeEntry) session() *fakeSession {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sess
}

func (e *fakeEntry) Session(context.Context) (coord.Session, error) { return e.session(), nil }

func (e *fakeEntry) Create(context.Context, coord.Session) (coord.Created, error) {
	return coord.Created{Epoch: e.epoch.Add(1)}, nil
}

// Look: the entry is always there and ours, the mark whatever the test set, and nothing
// changes by itself.
func (e *fakeEntry) Look(context.Context, coord.Session, coord.Created) (coord.Sight, <-chan struct{}, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return coord.Sight{Exists: true, Ours: true, Mark: e.mark}, nil, nil
}

func (e *fakeEntry) Delete(context.Context, coord.Session, coord.Created) error {
	return nil
}
func (e *fakeEntry) Release(context.Context) error { return nil }

// Retire starts a fresh, healthy session, as a backend's next Session would.
func (e *fakeEntry) Retire(ctx context.Context, _ coord.Session, _ coord.Created) {
	select {
	case <-e.proceed:
	case <-ctx.Done():
		return
	}
	e.retired.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sess = healthy()
}

// heardNow is a session heard just now, its fence an hour away, Lost or Suspended as given.
func heardNow(lost, suspended bool) *fakeSession {
	s := &fakeSession{}
	far := time.Now().Add(time.Hour)
	s.st.Set(coord.Standing{Lost: lost, Suspended: suspended, Heard: time.Now(), FenceAt: far, Next: far})
	return s
}

func healthy() *fakeSession { return heardNow(false, false) }

func start(t *testing.T, e *fakeEntry) coord.Registration {
	t.Helper()
	g := coord.NewGroup()
	t.Cleanup(func() { g.Close(func() {}) })
	reg, err := coord.StartRegistration(context.Background(), g, coordtest.NewMember("node-1"), coord.RegisterOptions{
		Timeout: time.Second,
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, func([]byte) coord.Entry { return e })
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestMachineFollowsStanding drives the machine through a session's standing: Suspended
// under the same epoch, Withdraw refused while suspended, Fenced at FenceAt and not before,
// then registered again under a new epoch after Retire.
func TestMachineFollowsStanding(t *testing.T) {
	e := &fakeEntry{sess: healthy(), mark: &coord.Quarantine{Node: "node-1", Reason: "test"}, proceed: make(chan struct{})}
	reg := start(t, e)
	st0 := coordtest.WaitStatus(t, reg, time.Second, "registered", func(s coord.Status) bool {
		return s.State == coord.Registered && s.Mark != nil
	})

	s := e.session()
	far := time.Now().Add(time.Hour)
	s.st.Set(coord.Standing{Suspended: true, Heard: time.Now(), FenceAt: far, Next: far})
	susp := coordtest.WaitStatus(t, reg, time.Second, "suspended", func(s coord.Status) bool { return s.State != coord.Registered })
	if susp.State != coord.Suspended || susp.Epoch != st0.Epoch || !susp.Live() {
		t.Fatalf("suspended status %+v, want live at epoch %d", susp, st0.Epoch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := reg.Withdraw(ctx); !errors.Is(err, coord.ErrUnavailable) {
		t.Fatalf("withdraw while suspended: %v, want ErrUnavailable", err)
	}

	const after = 150 * time.Millisecond
	fenceAt := time.Now().Add(after)
	s.st.Set(coord.Standing{Suspended: true, Heard: time.Now(), FenceAt: fenceAt, Next: fenceAt})
	fenced := coordtest.WaitStatus(t, reg, time.Second, "fenced", func(s coord.Status) bool { return s.State == coord.Fenced })
	if fenced.Since.Before(fenceAt) {
		t.Fatalf("fenced %v before the standing's FenceAt", fenceAt.Sub(fenced.Since))
	}
	e.proceed <- struct{}{}
	st := coordtest.WaitStatus(t, reg, time.Second, "registered again", func(s coord.Status) bool { return s.State == coord.Registered })
	if st.Epoch == st0.Epoch || e.retired.Load() != 1 {
		t.Fatalf("after the fence: %+v, retired %d times; want a new epoch after one Retire", st, e.retired.Load())
	}

	// A lost session fences at once, whatever its FenceAt says.
	s = e.session()
	s.st.Set(coord.Standing{Lost: true, Heard: time.Now(), FenceAt: far, Next: far})
	coordtest.WaitStatus(t, reg, time.Second, "fenced when lost", func(s coord.Status) bool { return s.State == coord.Fenced })
	e.proceed <- struct{}{}
	coordtest.WaitStatus(t, reg, time.Second, "registered under a third epoch", func(s coord.Status) bool {
		return s.State == coord.Registered && s.Epoch == 3
	})
	if e.retired.Load() != 2 {
		t.Fatalf("retired %d times, want 2", e.retired.Load())
	}
	if err := reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := reg.Status(); st.State != coord.Closed {
		t.Fatalf("after Deregister: %v, want closed", st.State)
	}
}

// stateLog records the states the machine enters, from its "registration" log lines.
type stateLog struct {
	mu     sync.Mutex
	states []string
	msgs   []string // every message, in order
}

func (l *stateLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *stateLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *stateLog) WithGroup(string) slog.Handler            { return l }
func (l *stateLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	r.Attrs(func(a slog.Attr) bool {
		if r.Message == "registration" && a.Key == "state" {
			l.mu.Lock()
			l.states = append(l.states, a.Value.String())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

// TestNotLiveOnASessionPastItsFence: an entry created on a session already past its fence
// (a create answered late) is never announced as Registered: the machine fences, retires it,
// and Register returns with the next attempt's epoch.
func TestNotLiveOnASessionPastItsFence(t *testing.T) {
	s := &fakeSession{}
	past := time.Now().Add(-time.Millisecond)
	s.st.Set(coord.Standing{Heard: past.Add(-time.Second), FenceAt: past, Next: past})
	e := &fakeEntry{sess: s, proceed: make(chan struct{})}
	log := &stateLog{}
	g := coord.NewGroup()
	defer g.Close(func() {})
	type result struct {
		reg coord.Registration
		err error
	}
	done := make(chan result, 1)
	ctx := testenv.Context(t, 5*time.Second)
	go func() {
		reg, err := coord.StartRegistration(ctx, g, coordtest.NewMember("node-1"),
			coord.RegisterOptions{Timeout: time.Second, Log: slog.New(log)}, func([]byte) coord.Entry { return e })
		done <- result{reg, err}
	}()
	e.proceed <- struct{}{} // the first entry fenced: Retire takes this
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	st, _ := r.reg.Status()
	log.mu.Lock()
	defer log.mu.Unlock()
	if st.State != coord.Registered || st.Epoch != 2 || len(log.states) == 0 || log.states[0] != "fenced" {
		t.Fatalf("Register returned %v at epoch %d after states %v; want registered at epoch 2, fenced first",
			st.State, st.Epoch, log.states)
	}
}

// blockingEntry is a backend that does not answer: Create and Release wait for their ctx.
type blockingEntry struct{ fakeEntry }

func (e *blockingEntry) Create(ctx context.Context, _ coord.Session) (coord.Created, error) {
	<-ctx.Done()
	return coord.Created{}, ctx.Err()
}
func (e *blockingEntry) Release(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

// TestRegisterReturnsWithItsContext: a Register whose ctx ends while the backend does not
// answer returns then; the entry is given up in the background, not within the call.
func TestRegisterReturnsWithItsContext(t *testing.T) {
	e := &blockingEntry{fakeEntry{sess: healthy()}}
	g := coord.NewGroup()
	defer g.Close(func() {})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	const timeout = 10 * time.Second // what a Release on a silent link may take
	start := time.Now()
	_, err := coord.StartRegistration(ctx, g, coordtest.NewMember("node-1"),
		coord.RegisterOptions{Timeout: timeout, Log: testenv.Logger(t)}, func([]byte) coord.Entry { return e })
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > timeout/2 {
		t.Fatalf("Register: %v after %v; want DeadlineExceeded soon after the 100ms ctx", err, took)
	}
}

// gatedRelease does not answer a create, and its release waits for gate.
type gatedRelease struct {
	blockingEntry
	gate chan struct{}
}

func (e *gatedRelease) Release(ctx context.Context) error {
	select {
	case <-e.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestRegisterAgainWaitsForTheFailedOnesRelease: a Register that failed gives its entry up
// in the background; a new Register of the same member waits for that (and for every failed
// one's before it), or the release would delete the entry the new one made.
func TestRegisterAgainWaitsForTheFailedOnesRelease(t *testing.T) {
	g := coord.NewGroup()
	defer g.Close(func() {})
	register := func(e coord.Entry, d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := coord.StartRegistration(ctx, g, coordtest.NewMember("node-1"),
			coord.RegisterOptions{Timeout: 10 * time.Second, Log: testenv.Logger(t)}, func([]byte) coord.Entry { return e })
		return err
	}
	gate := make(chan struct{})
	if err := register(&gatedRelease{blockingEntry{fakeEntry{sess: healthy()}}, gate}, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first Register: %v, want DeadlineExceeded", err)
	}
	if err := register(&fakeEntry{sess: healthy()}, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Register while the failed one's release is under way: %v, want it to wait (DeadlineExceeded)", err)
	}
	close(gate)
	if err := register(&fakeEntry{sess: healthy()}, 5*time.Second); err != nil {
		t.Fatalf("Register once the releases ended: %v", err)
	}
}

// duplicateEntry is held by another live process: every Create says so.
type duplicateEntry struct{ fakeEntry }

func (e *duplicateEntry) Create(context.Context, coord.Session) (coord.Created, error) {
	return coord.Created{}, fmt.Errorf("%w (instance other)", coord.ErrDuplicate)
}

// TestRegisterSaysWhyItWaits: a Register that finds the id held by another live process
// waits up to a timeout and a half for it to go (a crashed predecessor's session), and says
// so when it starts waiting, not only when it gives up (a trial saw a second node with the
// same id sit silent for 16s).
func TestRegisterSaysWhyItWaits(t *testing.T) {
	e := &duplicateEntry{fakeEntry{sess: healthy()}}
	log := &stateLog{}
	g := coord.NewGroup()
	defer g.Close(func() {})
	done := make(chan error, 1)
	go func() {
		_, err := coord.StartRegistration(testenv.Context(t, 10*time.Second), g, coordtest.NewMember("node-1"),
			coord.RegisterOptions{Timeout: time.Second, Log: slog.New(log)}, func([]byte) coord.Entry { return e })
		done <- err
	}()
	testenv.Eventually(t, time.Second, 10*time.Millisecond, func() error {
		log.mu.Lock()
		defer log.mu.Unlock()
		for _, m := range log.msgs {
			if strings.Contains(m, "held by another live process; waiting") {
				return nil
			}
		}
		return fmt.Errorf("logged %q", log.msgs)
	})
	if err := <-done; !errors.Is(err, coord.ErrDuplicate) {
		t.Fatalf("Register: %v, want ErrDuplicate after the wait", err)
	}
}
