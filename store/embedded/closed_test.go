package embedded_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/embedded"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

func TestClosedStore(t *testing.T) {
	s := open(t, testConfig(t, t.TempDir()))
	ctx := testContext(t)
	p := storetest.NewPresence("c1", "n1", 1)
	if _, err := s.Connect(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"Connect":  func() error { _, err := s.Connect(ctx, p); return err },
		"Reassert": func() error { return s.Reassert(ctx, p) },
		"ConfirmTakeover": func() error {
			return s.ConfirmTakeover(ctx, "c1", p.Session)
		},
		"Disconnect": func() error { _, err := s.Disconnect(ctx, "c1", p.Session); return err },
		"Lookup":     func() error { _, _, err := s.Lookup(ctx, "c1"); return err },
		"ClearNode":  func() error { _, err := s.ClearNode(ctx, "n1", 1); return err },
		"Append": func() error {
			_, err := s.Append(ctx, 10, []store.Message{storetest.NewMessage("c1", "m")})
			return err
		},
		"Peek":   func() error { _, err := s.Peek(ctx, "c1", 0, 10); return err },
		"Remove": func() error { return s.Remove(ctx, store.Removal{Client: "c1", IDs: []string{"m"}}) },
		"Depth":  func() error { _, err := s.Depth(ctx, "c1"); return err },
		"Notify": func() error {
			return s.Notify(ctx, "n1", store.Notice{Kind: store.NoticeMailbox, Client: "c1"})
		},
		"TakeNotices": func() error { _, err := s.TakeNotices(ctx, "n1", 10); return err },
		"DoneNotices": func() error { return s.DoneNotices(ctx, "n1", 1) },
		"Ping":        func() error { return s.Ping(ctx) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, embedded.ErrClosed) || !errors.Is(err, store.ErrUnavailable) ||
			!strings.Contains(err.Error(), "closed") {
			t.Errorf("%s after Close: %v, want an error saying the store is closed", name, err)
		}
	}
}
