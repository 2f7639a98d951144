package bench

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(`# HELP process_cpu_seconds_total Total user and system CPU time.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
go_memstats_heap_inuse_bytes 1.2345e+06
switchboard_router_messages_total{status="delivered"} 42
weird{label="a } b"} 7 1700000000
broken line
`))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		"process_cpu_seconds_total":                             12.5,
		"go_memstats_heap_inuse_bytes":                          1234500,
		`switchboard_router_messages_total{status="delivered"}`: 42,
		`weird{label="a } b"}`:                                  7,
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
}

func TestVmRSS(t *testing.T) {
	v, err := vmRSS(os.Getpid())
	if err != nil || v <= 0 {
		t.Fatalf("vmRSS(self) = %d, %v", v, err)
	}
	if _, err := vmRSS(1 << 30); err == nil {
		t.Fatal("vmRSS of no process succeeded")
	}
}

func TestMedian(t *testing.T) {
	if !math.IsNaN(Median(nil)) {
		t.Fatal("median of nothing")
	}
	vals := []float64{5, 1, 3}
	if Median(vals) != 3 || vals[0] != 5 {
		t.Fatal("odd median, or input changed")
	}
	if Median([]float64{4, 1, 3, 2}) != 2.5 {
		t.Fatal("even median")
	}
}

const reportInput = `{"label":"pubsub-q1","system":"mosquitto","delivered_per_s":100}
{"label":"pubsub-q1","system":"mosquitto","delivered_per_s":120}
{"label":"pubsub-q1","system":"mosquitto","delivered_per_s":110}
{"label":"pubsub-q1","system":"mochi-bare","delivered_per_s":200}
{"label":"pubsub-q1","system":"node","delivered_per_s":50}
{
  "label": "direct-sat", "system": "cluster", "delivered_per_s": 60,
  "latency_ms": {"p99": 1.5}
}
`

func TestReport(t *testing.T) {
	res, err := ReadResults(strings.NewReader(reportInput))
	if err != nil || len(res) != 6 {
		t.Fatalf("%d results, %v", len(res), err)
	}
	rep := NewReport(res)
	systems := []ReportSystem{{"mosquitto", "mosquitto"}, {"mochi-bare", "bare mochi"}, {"node", "node"}, {"cluster", "cluster"}}
	rows := []ReportRow{
		{Title: "pubsub QoS 1", Label: "pubsub-q1", Metric: "delivered_per_s", Unit: "msg/s"},
		{Title: "directed", Label: "direct-sat", Metric: "delivered_per_s", Unit: "msg/s", Ref: "pubsub-q1"},
		{Title: "p99", Label: "direct-sat", Metric: "latency_ms.p99", Unit: "ms"},
	}
	var b bytes.Buffer
	rep.WriteTable(&b, systems, []string{"mosquitto", "mochi-bare"}, rows)
	out := b.String()
	for _, want := range []string{
		"| pubsub QoS 1 | 110 msg/s <sub>n=3</sub> | 200 msg/s <sub>n=1</sub> | 50 msg/s <sub>n=1</sub> | — | node 0.45× | node 0.25× |",
		"| directed | — | — | — | 60 msg/s <sub>n=1</sub> | cluster 0.55× | cluster 0.30× |",
		"| p99 | — | — | — | 1.500 ms <sub>n=1</sub> | — | — |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	rep.WriteRuns(&b, systems, rows[:1])
	if !strings.Contains(b.String(), "| pubsub QoS 1 | mosquitto | 100 msg/s, 120 msg/s, 110 msg/s |") {
		t.Errorf("runs:\n%s", b.String())
	}

	var targets []ReportTarget
	for _, s := range []string{
		"directed ≥ 0.6× bare mochi|direct-sat|cluster|delivered_per_s|msg/s|>=|0.6|pubsub-q1|mochi-bare",
		"p99 < 2 ms|direct-sat|cluster|latency_ms.p99|ms|<|2",
		"not run|connect|node|connect.bytes_per_conn|B|<|10000",
	} {
		tg, err := ParseReportTarget(s)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, tg)
	}
	v := rep.CheckTargets(targets)
	if v[0].Met || v[0].Goal != 120 || !v[1].Met || !v[2].Missing {
		t.Fatalf("verdicts %+v", v)
	}
	b.Reset()
	WriteTargets(&b, v)
	if !strings.Contains(b.String(), "**missed** — directed ≥ 0.6× bare mochi: measured 60 msg/s, target >= 120 msg/s (0.6 × mochi-bare)") {
		t.Errorf("targets:\n%s", b.String())
	}
	b.Reset()
	if rep.WriteFailures(&b) {
		t.Fatalf("failures reported for results without an ok field: %q", b.String())
	}
	failedRun, _ := ReadResults(strings.NewReader(`{"label":"x","system":"y","ok":false,"failures":["3 lost"]}{"ok":true}`))
	if !NewReport(failedRun).WriteFailures(&b) || b.String() != "- x on y: 3 lost\n" {
		t.Fatalf("failures %q", b.String())
	}
	for _, bad := range []string{"a|b", "a|b|c|d|e|f|g"} {
		if _, err := ParseReportRow(bad); err == nil {
			t.Errorf("ParseReportRow(%q) succeeded", bad)
		}
	}
	if _, err := ParseReportTarget("a|b|c|d|e|=|1"); err == nil {
		t.Error("target with op = accepted")
	}
}

func TestReportGeneratorColumnAndMedian(t *testing.T) {
	res, err := ReadResults(strings.NewReader(`
{"label":"pubsub-q1","system":"mochi-bare","delivered_per_s":200,"generator_cpu_us_per_msg":9}
{"label":"pubsub-q1","system":"node","delivered_per_s":100,"generator_cpu_us_per_msg":10}
{"label":"direct-burst","system":"cluster","burst":{"client_per_s":{"p50":12000}},"generator_cpu_us_per_msg":4}
{"label":"direct-burst","system":"cluster","burst":{"client_per_s":{"p50":10000}},"generator_cpu_us_per_msg":6}
{"label":"direct-burst","system":"cluster","burst":{"client_per_s":{"p50":16000}},"generator_cpu_us_per_msg":5}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep := NewReport(res)
	if v, ok := rep.Median("direct-burst", "cluster", "burst.client_per_s.p50"); !ok || v != 12000 {
		t.Fatalf("median %v, %v", v, ok)
	}
	if _, ok := rep.Median("direct-burst", "node", "burst.client_per_s.p50"); ok {
		t.Fatal("median of no results")
	}
	systems := []ReportSystem{{"mochi-bare", "bare mochi"}, {"node", "node"}, {"cluster", "cluster"}}
	var rows []ReportRow
	for _, s := range []string{
		"pub/sub|pubsub-q1|delivered_per_s|msg/s||generator_cpu_us_per_msg",
		"burst|direct-burst|burst.client_per_s.p50|msg/s|pubsub-q1:delivered_per_s|generator_cpu_us_per_msg",
		"no generator|direct-burst|burst.client_per_s.p50|msg/s",
	} {
		r, err := ParseReportRow(s)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	var b bytes.Buffer
	rep.WriteTable(&b, systems, []string{"mochi-bare"}, rows)
	for _, want := range []string{
		"| | bare mochi | node | cluster | ÷ bare mochi | generator CPU per message |\n|---|---:|---:|---:|---:|---:|\n",
		"| pub/sub | 200 msg/s <sub>n=1</sub> | 100 msg/s <sub>n=1</sub> | — | node 0.50× | bare mochi 9.00 µs<br>node 10.00 µs |",
		"| burst | — | — | 12,000 msg/s <sub>n=3</sub> | cluster 60.00× | 5.00 µs |",
		"| no generator | — | — | 12,000 msg/s <sub>n=3</sub> | — | — |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		unit string
		want string
	}{
		{1234567.4, "msg/s", "1,234,567 msg/s"},
		{999, "conn/s", "999 conn/s"},
		{0.12345, "ms", "0.123 ms"},
		{12.345, "µs", "12.35 µs"},
		{9500, "B", "9.5 KB"},
		{512, "B", "512 B"},
		{12345, "messages", "12,345 messages"},
		{37000, "pings", "37,000 pings"},
		{0.12494, "cores", "0.1249 cores"},
		{math.NaN(), "B", "—"},
	} {
		if got := FormatValue(tc.v, tc.unit); got != tc.want {
			t.Errorf("FormatValue(%v, %q) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
	}
}

// TestReportRatioToSystem: a row whose REF names a system carries, in each other system's
// cell, its ratio to that system's median of the reference label: cross-node pub/sub on
// the cluster against pub/sub on one node.
func TestReportRatioToSystem(t *testing.T) {
	res, err := ReadResults(strings.NewReader(`
{"label":"pubsub-q0","system":"mochi-bare","delivered_per_s":200}
{"label":"pubsub-q0","system":"node","delivered_per_s":160}
{"label":"pubsub-x-q0","system":"cluster","delivered_per_s":90}
{"label":"pubsub-x-q0","system":"cluster","delivered_per_s":80}
{"label":"pubsub-x-q0","system":"cluster","delivered_per_s":70}
{"label":"pubsub-x-q1","system":"cluster","ok":false}
`))
	if err != nil {
		t.Fatal(err)
	}
	systems := []ReportSystem{{"mochi-bare", "bare mochi"}, {"node", "Switchboard node"}, {"cluster", "Switchboard cluster"}}
	var rows []ReportRow
	for _, s := range []string{
		"cross-node QoS 0|pubsub-x-q0|delivered_per_s|msg/s|pubsub-q0@node",
		"cross-node QoS 1|pubsub-x-q1|delivered_per_s|msg/s|pubsub-q1@node",
		"same label|pubsub-q0|delivered_per_s|msg/s|@node",
	} {
		r, err := ParseReportRow(s)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	if r := rows[0]; r.Ref != "pubsub-q0" || r.RefMetric != "" || r.RefSystem != "node" {
		t.Fatalf("parsed %+v", r)
	}
	if r, _ := ParseReportRow("t|l|m|u|ref:lat.p99@node|gen"); r.Ref != "ref" || r.RefMetric != "lat.p99" || r.RefSystem != "node" || r.Gen != "gen" {
		t.Fatalf("parsed %+v", r)
	}
	var b bytes.Buffer
	NewReport(res).WriteTable(&b, systems, []string{"mochi-bare"}, rows)
	for _, want := range []string{
		"| cross-node QoS 0 | — | — | 80 msg/s <sub>n=3</sub> (0.50× Switchboard node) | Switchboard cluster 0.40× |",
		// Nothing to compare: no figure, no ratio.
		"| cross-node QoS 1 | — | — | — | — |",
		// Neither RefSystem nor a ratio column's system gets the ratio in its cell.
		"| same label | 200 msg/s <sub>n=1</sub> | 160 msg/s <sub>n=1</sub> | — | Switchboard node 0.80× |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
