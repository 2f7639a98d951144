package mqttclient

import (
	"testing"

	"go.uber.org/goleak"
)

// The client starts two goroutines per connection; Close must stop them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
