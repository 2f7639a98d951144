package monitor

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// noNodes is a live set with nobody in it.
type noNodes struct{}

func (noNodes) Members() []coord.Member { return nil }

// TestStartLeadsAndCloseResigns: a started monitor campaigns and leads; Close stops it,
// resigns the election and closes Done.
func TestStartLeadsAndCloseResigns(t *testing.T) {
	cl := memcoord.NewCluster()
	c, obs := testenv.OpenMemCoord(t, cl), testenv.OpenMemCoord(t, cl)
	cfg := DefaultConfig()
	cfg.ID = "mon-1"
	cfg.Interval = 50 * time.Millisecond
	m, err := Start(cfg, c, noNodes{}, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !m.State().Leading {
			return errors.New("not leading yet")
		}
		leader, err := obs.Leader(testenv.Context(t, 5*time.Second), "monitor")
		if err != nil || coord.ParseCandidate(leader).ID != "mon-1" {
			return fmt.Errorf("leader %q, %v", leader, err)
		}
		return nil
	})
	m.Close()
	select {
	case <-m.Done():
	default:
		t.Fatal("Done is open after Close")
	}
	m.Close() // idempotent
	if leader, err := obs.Leader(testenv.Context(t, 5*time.Second), "monitor"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("after Close the monitor election is led by %q (%v)", leader, err)
	}
}

// TestStartRefusesBadConfig: an invalid configuration starts nothing.
func TestStartRefusesBadConfig(t *testing.T) {
	c := testenv.OpenMemCoord(t, memcoord.NewCluster())
	if _, err := Start(Config{}, c, noNodes{}, testenv.Logger(t)); err == nil {
		t.Fatal("Start accepted an empty config")
	}
}
