package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/coord/zkcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// statusJSON mirrors the JSON `switchboard status --json` prints.
type statusJSON struct {
	Nodes         []coord.Member     `json:"nodes"`
	Quarantined   []coord.Quarantine `json:"quarantined"`
	MonitorLeader string             `json:"monitor_leader"`
}

// TestStatusShowsRegisteredNode: a member registered with zkcoord directly is what
// `status --json` reports, with its epoch; a quarantine mark (its evidence whole) and the
// monitor election's leader show too; the text form names the node and keeps its lines short.
func TestStatusShowsRegisteredNode(t *testing.T) {
	e := shared.Ensemble(t)
	root := "/cli-test-" + coordtest.Instance()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := zkcoord.New(ctx, zkcoord.Config{Servers: e.Addrs(),
		Settings: coord.Settings{Root: root, SessionTimeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	args := []string{"status", "--zk", e.ConnectString(), "--zk-root", root, "--json"}
	code, out, errOut := run(t, 30*time.Second, args...)
	if code != 0 {
		t.Fatalf("status on an empty namespace: exit %d: %s", code, errOut)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	if len(st.Nodes) != 0 || len(st.Quarantined) != 0 || st.MonitorLeader != "" {
		t.Fatalf("empty namespace shows %+v", st)
	}

	m := coordtest.NewMember("node-s")
	reg, err := c.Register(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Deregister(context.Background()) })
	rs, _ := reg.Status()
	m.Epoch = rs.Epoch
	evidence := `{"rule":"test","probes":[` + strings.Repeat(`{"mqtt":"127.0.0.1:1883","error":"i/o timeout"},`, 30) + `{}]}`
	q := coord.Quarantine{Node: "node-q", Reason: "test mark", At: time.Now().UTC().Truncate(time.Second), By: "cli-test",
		Evidence: []byte(evidence)}
	if err := c.SetQuarantine(ctx, q, nil); err != nil {
		t.Fatal(err)
	}
	lead, err := c.Campaign(ctx, "monitor", "monitor-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lead.Resign(context.Background()) })

	code, out, errOut = run(t, 30*time.Second, args...)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	st = statusJSON{}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	if len(st.Nodes) != 1 || st.Nodes[0] != m {
		t.Fatalf("status shows nodes %+v, want exactly %+v", st.Nodes, m)
	}
	if len(st.Quarantined) != 1 || st.Quarantined[0].Node != "node-q" || st.Quarantined[0].Reason != "test mark" ||
		!st.Quarantined[0].At.Equal(q.At) {
		t.Fatalf("status shows quarantines %+v, want %+v", st.Quarantined, q)
	}
	var ev bytes.Buffer // --json indents the evidence with the rest
	if err := json.Compact(&ev, st.Quarantined[0].Evidence); err != nil || ev.String() != evidence {
		t.Fatalf("status --json shows the evidence as %s (%v), want %s", st.Quarantined[0].Evidence, err, evidence)
	}
	if st.MonitorLeader != "monitor-1" {
		t.Fatalf("monitor leader %q, want monitor-1", st.MonitorLeader)
	}

	code, out, errOut = run(t, 30*time.Second, "status", "--zk", e.ConnectString(), "--zk-root", root)
	if code != 0 {
		t.Fatalf("status (text): exit %d: %s", code, errOut)
	}
	for _, want := range []string{"node-s", m.MQTTAddr, "1 live node(s)", "QUARANTINED", "node-q", "test mark", "monitor leader: monitor-1"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status text lacks %q:\n%s", want, out)
		}
	}
	for line := range strings.Lines(out) {
		if len(line) > 200 {
			t.Fatalf("status text has a line of %d bytes (the evidence whole?):\n%s", len(line), out)
		}
	}
}

// TestStatusUnreachable: with no ZooKeeper the command fails in bounded time naming the
// servers it tried.
func TestStatusUnreachable(t *testing.T) {
	addrs := testenv.RefusedAddrs(t, 2)
	start := time.Now()
	code, _, errOut := run(t, 30*time.Second, "status", "--zk", strings.Join(addrs, ","), "--zk-dial-timeout", "2s", "--json")
	if code == 0 {
		t.Fatal("status with no ZooKeeper exited 0")
	}
	if !strings.Contains(errOut, strings.Join(addrs, ",")) {
		t.Fatalf("error does not name the servers tried:\n%s", errOut)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("took %v with a 2s dial timeout", d)
	}
}
