package testenv

import (
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
)

// OpenMemCoord opens a client of cl, with a session of its own (another process of the
// cluster), logging to the test and closed at cleanup: for the tests of roles, which need
// a coordinator but do not test one. Its session timeout is the 2s the role tests use with
// real backends.
func OpenMemCoord(t testing.TB, cl *memcoord.Cluster) *memcoord.Coordinator {
	t.Helper()
	c := cl.Open(memcoord.Config{SessionTimeout: 2 * time.Second, Logger: Logger(t)})
	t.Cleanup(func() { c.Close() })
	return c
}
