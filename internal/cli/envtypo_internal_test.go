package cli

import (
	"strings"
	"testing"
	"time"
)

// A SWITCHBOARD_* variable one or two letters off a flag's is named with the flag it
// probably meant; a variable of another role's flag, or a far one, is not.
func TestMisspelledVariableIsNamed(t *testing.T) {
	t.Setenv("SWITCHBOARD_SESION_TIMEOUT", "5s")
	t.Setenv("SWITCHBOARD_MQTT", "127.0.0.1:1") // node's --mqtt: another command's
	t.Setenv("SWITCHBOARD_SOMETHING_ELSE_ENTIRELY", "x")
	var errOut strings.Builder
	fs := newFlagSet("test", env{stderr: &errOut})
	timeout := fs.Duration("session-timeout", 2*time.Second, "")
	fs.String("mqttx", "", "")
	if err := parse(fs, nil); err != nil {
		t.Fatal(err)
	}
	if *timeout != 2*time.Second {
		t.Fatalf("session-timeout %v: the misspelled variable was taken", *timeout)
	}
	want := "SWITCHBOARD_SESION_TIMEOUT is set but is no flag's variable; did you mean SWITCHBOARD_SESSION_TIMEOUT (--session-timeout)?"
	if got := errOut.String(); !strings.Contains(got, want) || strings.Count(got, "warning") != 1 {
		t.Fatalf("stderr %q, want one warning: %q", got, want)
	}
}
