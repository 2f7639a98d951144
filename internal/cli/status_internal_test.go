package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// TestQuarantineTableCutsEvidence: the QUARANTINED table shows a mark's evidence on one
// short line — whole when short, else its start, an ellipsis and a pointer to --json —
// however many probe rounds the monitor put in it.
func TestQuarantineTableCutsEvidence(t *testing.T) {
	type probe struct {
		Round int    `json:"round"`
		MQTT  string `json:"mqtt"`
		Err   string `json:"error"`
	}
	var probes []probe
	for i := range 20 {
		probes = append(probes, probe{Round: i, MQTT: "127.0.0.1:1883", Err: "dial tcp 127.0.0.1:1883: i/o timeout"})
	}
	long, err := json.MarshalIndent(map[string]any{"rule": "3 failed rounds", "probes": probes}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var out bytes.Buffer
	writeQuarantines(&out, []coord.Quarantine{
		{Node: "node-2", Reason: "mqtt probe failed 3 rounds", At: at, By: "monitor-1", Evidence: long},
		{Node: "node-3", Reason: "disk", At: at, By: "ops@host", Evidence: []byte(`{"manual":true}`)},
		{Node: "node-4", Reason: "old mark", At: at, By: "ops@host"},
	})
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 lines:\n%s", out.String())
	}
	for _, l := range lines {
		if len(l) > 200 {
			t.Errorf("line of %d bytes:\n%s", len(l), l)
		}
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, long)
	if want := compact.String()[:evidenceMax] + "… (see status --json)"; !strings.HasSuffix(lines[1], want) {
		t.Errorf("node-2's evidence: want it to end %q:\n%s", want, lines[1])
	}
	if !strings.HasSuffix(lines[2], `{"manual":true}`) {
		t.Errorf("node-3's short evidence is not whole:\n%s", lines[2])
	}
	if !strings.HasSuffix(lines[3], " -") {
		t.Errorf("node-4 without evidence:\n%s", lines[3])
	}
	for i, want := range []string{"node-2", "node-3", "node-4"} {
		if !strings.HasPrefix(lines[i+1], want) || !strings.Contains(lines[i+1], at.Format(time.RFC3339)) {
			t.Errorf("line %d: %s", i+1, lines[i+1])
		}
	}
}
