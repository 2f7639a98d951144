package coord_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/etcdcoord"
	"github.com/switchboard-mqtt/switchboard/coord/zkcoord"
)

func TestSettingsValidate(t *testing.T) {
	for _, c := range []struct {
		s    coord.Settings
		want string
	}{
		{coord.Settings{Root: "switchboard"}, `x: Root "switchboard"`},
		{coord.Settings{Root: "/switchboard/"}, `Root "/switchboard/"`},
		{coord.Settings{Root: "/a//b"}, `Root "/a//b"`},
		{coord.Settings{SessionTimeout: time.Second}, "SessionTimeout 1s is too short (minimum 2s)"},
		{coord.Settings{SessionTimeout: -time.Second}, "SessionTimeout -1s is too short"},
		{coord.Settings{DialTimeout: -time.Second}, "DialTimeout -1s"},
	} {
		err := c.s.Validate("x", 2*time.Second)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %s", c.s, err, c.want)
		}
	}
	for _, s := range []coord.Settings{{}, coord.DefaultSettings(), {Root: "/a/b", SessionTimeout: 2 * time.Second}} {
		if err := s.Validate("x", 2*time.Second); err != nil {
			t.Errorf("Validate(%+v) = %v", s, err)
		}
	}
	if got, want := (coord.Settings{Root: "/r"}).WithDefaults(), coord.DefaultSettings(); got.Root != "/r" ||
		got.SessionTimeout != want.SessionTimeout || got.DialTimeout != want.DialTimeout || got.Logger != want.Logger {
		t.Errorf("WithDefaults = %+v, want the defaults with Root /r", got)
	}
}

// TestUnreachableBackendsFailFast: each real backend's New, sent where nothing listens, fails
// within a limit with an error that names the addresses tried and wraps ErrUnavailable, and
// leaves no goroutine behind.
func TestUnreachableBackendsFailFast(t *testing.T) {
	addrs := []string{"127.0.0.1:1", "127.0.0.1:2"}
	s := coord.Settings{DialTimeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)}
	for _, b := range []struct {
		name  string
		limit time.Duration
		open  func() error
	}{
		{"zk", 10 * time.Second, func() error {
			_, err := zkcoord.New(context.Background(), zkcoord.Config{Servers: addrs, Settings: s})
			return err
		}},
		{"etcd", 5 * time.Second, func() error {
			_, err := etcdcoord.New(context.Background(), etcdcoord.Config{Endpoints: addrs, Settings: s})
			return err
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			start := time.Now()
			err := b.open()
			switch {
			case err == nil:
				t.Fatal("New succeeded with no server listening")
			case !strings.Contains(err.Error(), strings.Join(addrs, ",")):
				t.Fatalf("error %q does not name the addresses tried", err)
			case !errors.Is(err, coord.ErrUnavailable):
				t.Fatalf("error %q does not wrap coord.ErrUnavailable", err)
			}
			if d := time.Since(start); d > b.limit {
				t.Fatalf("New took %v with DialTimeout 2s", d)
			}
		})
	}
}
