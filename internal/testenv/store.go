package testenv

import (
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store/embedded"
)

// EmbeddedStore opens an embedded store in a temporary directory of its own and closes it
// at cleanup, for the tests of code that needs a store but does not test one: no server
// to start, and the store suites hold it to the same behaviour as Redis.
func EmbeddedStore(t testing.TB) *embedded.Store {
	t.Helper()
	cfg := embedded.DefaultConfig()
	cfg.Dir = t.TempDir()
	st, err := embedded.Open(Context(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatalf("embedded.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
