package monitor

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestStartLeadsAndCloseResigns: a started monitor campaigns and leads; Close stops it,
// resigns the election and closes Done.
func TestStartLeadsAndCloseResigns(t *testing.T) {
	cl := memcoord.NewCluster()
	c, obs := testenv.OpenMemCoord(t, cl), testenv.OpenMemCoord(t, cl)
	cfg := DefaultConfig()
	cfg.ID = "mon-1"
	cfg.Interval = 50 * time.Millisecond
	m, err := Start(testenv.Context(t, 10*time.Second), cfg, Deps{Coord: c, Logger: testenv.Logger(t)})
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
	if _, err := Start(testenv.Context(t, 10*time.Second), Config{}, Deps{Coord: c, Logger: testenv.Logger(t)}); err == nil {
		t.Fatal("Start accepted an empty config")
	}
}

// TestStartServesAdmin: given an admin listener, the monitor serves its handler there,
// publishes that address with its candidacy, and stops serving at Close.
func TestStartServesAdmin(t *testing.T) {
	cl := memcoord.NewCluster()
	c, obs := testenv.OpenMemCoord(t, cl), testenv.OpenMemCoord(t, cl)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ID = "mon-admin"
	m, err := Start(testenv.Context(t, 10*time.Second), cfg, Deps{Coord: c, Admin: l, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	url := "http://" + l.Addr().String() + "/healthz"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %s", resp.Status)
	}
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		leader, err := obs.Leader(testenv.Context(t, 5*time.Second), "monitor")
		if err != nil || coord.ParseCandidate(leader).AdminAddr != l.Addr().String() {
			return fmt.Errorf("leader %q, %v; want the admin address %s", leader, err, l.Addr())
		}
		return nil
	})
	m.Close()
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("the admin listener still answers after Close")
	}
}
