package monitor

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/inbox"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// TestProbeMQTT runs the probe against a bare broker: it pings, and its message comes back.
func TestProbeMQTT(t *testing.T) {
	_, addr := testenv.StartMochi(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id := "sb-probe.m1.n1"
	res, err := probeMQTT(ctx, coord.Member{MQTTAddr: addr}, id, inbox.ProbeTopicPrefix+id, "", "")
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if res.Ping <= 0 || res.E2E <= 0 {
		t.Fatalf("probe measured %+v", res)
	}
}

// TestProbeMQTTRefused: a refused CONNECT fails the ping half, so no time is measured.
func TestProbeMQTTRefused(t *testing.T) {
	_, addr := testenv.StartMochi(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := probeMQTT(ctx, coord.Member{MQTTAddr: addr}, "refused-probe", inbox.ProbeTopicPrefix+"refused-probe", "", "")
	if err == nil || res.Ping != 0 {
		t.Fatalf("probe of a refusing broker: %+v, %v", res, err)
	}
}
