package coord_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
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
