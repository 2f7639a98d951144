package node

import (
	"sync/atomic"
	"time"
)

// failpoints let tests make a node sick in ways no outside fault injects: its MQTT accept
// loop stopping, or added latency on every packet. They are set only through the admin
// endpoint that builds with the "failpoints" tag add (see failpoints_on.go); a production
// build has no way to set them.
type failpoints struct {
	packetDelay atomic.Int64 // nanoseconds added before each inbound MQTT packet is handled
}

// delay sleeps for the configured packet delay, if any.
func (f *failpoints) delay() {
	if d := f.packetDelay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
}
