package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// A report turns many --json results (several runs of each benchmark on each system) into
// one side-by-side markdown table of medians, with ratios to reference systems, and checks
// targets against it.

// ReportSystem is a column: results whose "system" is Key, headed Name.
type ReportSystem struct{ Key, Name string }

// ReportRow is a row: metric Metric (a dotted path into a result, such as
// "latency_ms.p99") of the results labelled Label, shown in Unit. Ratios compare each
// non-reference system's median with the reference systems' medians of the same metric
// (RefMetric when set) in the results labelled Ref (Label when empty). RefSystem, when
// set, adds one ratio inside the cell of each system that is neither RefSystem nor a
// reference system: to RefSystem's median of that reference, so a row reads against a
// figure of another row (cross-node pub/sub on a cluster against pub/sub on one node).
// Gen, when set, is the metric (in µs) of the same results shown in the table's last
// column, the generator's CPU per message, so a reader sees beside the figure whether the
// generator was what ran out.
type ReportRow struct {
	Title, Label, Metric, Unit, Ref, RefMetric, RefSystem, Gen string
}

// ParseReportRow parses "TITLE|LABEL|METRIC|UNIT[|REF[|GEN]]", where REF is
// LABEL[:METRIC][@SYSTEM] (LABEL may be empty: "@node" compares with the same label).
func ParseReportRow(s string) (ReportRow, error) {
	f := strings.Split(s, "|")
	if len(f) < 4 || len(f) > 6 {
		return ReportRow{}, fmt.Errorf("row %q: want TITLE|LABEL|METRIC|UNIT[|REF[|GEN]]", s)
	}
	r := ReportRow{Title: f[0], Label: f[1], Metric: f[2], Unit: f[3]}
	if len(f) >= 5 {
		ref, sys, _ := strings.Cut(f[4], "@")
		r.Ref, r.RefMetric, _ = strings.Cut(ref, ":")
		r.RefSystem = sys
	}
	if len(f) == 6 {
		r.Gen = f[5]
	}
	return r, nil
}

// ReportTarget is a goal: the median of Metric for (Label, System) compared by Op (">=",
// "<=", ">", "<") with Value, or with Value times the median of the same metric for
// (RefLabel, RefSystem) when RefSystem is set.
type ReportTarget struct {
	Text, Label, System, Metric, Op string
	Value                           float64
	RefLabel, RefSystem             string
	Unit                            string
}

// ParseReportTarget parses "TEXT|LABEL|SYSTEM|METRIC|UNIT|OP|VALUE[|REFLABEL|REFSYSTEM]".
func ParseReportTarget(s string) (ReportTarget, error) {
	f := strings.Split(s, "|")
	if len(f) != 7 && len(f) != 9 {
		return ReportTarget{}, fmt.Errorf("target %q: want TEXT|LABEL|SYSTEM|METRIC|UNIT|OP|VALUE[|REFLABEL|REFSYSTEM]", s)
	}
	v, err := strconv.ParseFloat(f[6], 64)
	if err != nil {
		return ReportTarget{}, fmt.Errorf("target %q: value %q: %w", s, f[6], err)
	}
	switch f[5] {
	case ">=", "<=", ">", "<":
	default:
		return ReportTarget{}, fmt.Errorf("target %q: op %q: want >=, <=, > or <", s, f[5])
	}
	t := ReportTarget{Text: f[0], Label: f[1], System: f[2], Metric: f[3], Unit: f[4], Op: f[5], Value: v}
	if len(f) == 9 {
		t.RefLabel, t.RefSystem = f[7], f[8]
	}
	return t, nil
}

// ReadResults reads a stream of JSON results (one after another, indented or not).
func ReadResults(r io.Reader) ([]map[string]any, error) {
	dec := json.NewDecoder(r)
	var out []map[string]any
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("result %d: %w", len(out)+1, err)
		}
		out = append(out, m)
	}
}

// lookup finds a dotted path's number in a result.
func lookup(m map[string]any, path string) (float64, bool) {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return 0, false
		}
		cur, ok = mm[k]
		if !ok {
			return 0, false
		}
	}
	v, ok := cur.(float64)
	return v, ok
}

// Median is the median of vals (NaN when empty). vals is not changed.
func Median(vals []float64) float64 {
	if len(vals) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), vals...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Report holds results for reporting.
type Report struct {
	results []map[string]any
}

// NewReport reports on results.
func NewReport(results []map[string]any) *Report { return &Report{results: results} }

// values returns the metric of every result with that label and system, in order.
func (r *Report) values(label, system, metric string) []float64 {
	var out []float64
	for _, m := range r.results {
		if m["label"] != label || m["system"] != system {
			continue
		}
		if v, ok := lookup(m, metric); ok {
			out = append(out, v)
		}
	}
	return out
}

// Median is the median of metric over the results with that label and system; false when
// none has it.
func (r *Report) Median(label, system, metric string) (float64, bool) {
	vals := r.values(label, system, metric)
	return Median(vals), len(vals) > 0
}

// FormatValue writes v for a table in unit.
func FormatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "—"
	}
	switch unit {
	case "msg/s", "conn/s", "messages", "pings", "dials":
		return thousands(int64(math.Round(v))) + " " + unit
	case "cores":
		return fmt.Sprintf("%.4f cores", v)
	case "ms":
		return fmt.Sprintf("%.3f ms", v)
	case "µs":
		return fmt.Sprintf("%.2f µs", v)
	case "B": // decimal kilobytes, as targets are stated
		if math.Abs(v) >= 1000 {
			return fmt.Sprintf("%.1f KB", v/1000)
		}
		return fmt.Sprintf("%.0f B", v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + " " + unit
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// WriteTable writes the side-by-side markdown table: one column per system (medians), then
// one ratio column per reference system, then, if any row has a Gen metric, the generator's
// CPU per message.
func (r *Report) WriteTable(w io.Writer, systems []ReportSystem, refs []string, rows []ReportRow) {
	gen := slices.ContainsFunc(rows, func(row ReportRow) bool { return row.Gen != "" })
	isRef := map[string]bool{}
	for _, k := range refs {
		isRef[k] = true
	}
	name := map[string]string{}
	for _, s := range systems {
		name[s.Key] = s.Name
	}
	var b strings.Builder
	b.WriteString("| |")
	for _, s := range systems {
		fmt.Fprintf(&b, " %s |", s.Name)
	}
	for _, k := range refs {
		fmt.Fprintf(&b, " ÷ %s |", name[k])
	}
	cols := len(systems) + len(refs)
	if gen {
		b.WriteString(" generator CPU per message |")
		cols++
	}
	b.WriteString("\n|---|")
	for range cols {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s |", row.Title)
		refLabel, refMetric := row.Ref, row.RefMetric
		if refLabel == "" {
			refLabel = row.Label
		}
		if refMetric == "" {
			refMetric = row.Metric
		}
		rowBase := math.NaN()
		if row.RefSystem != "" {
			rowBase = Median(r.values(refLabel, row.RefSystem, refMetric))
		}
		med := map[string]float64{}
		for _, s := range systems {
			vals := r.values(row.Label, s.Key, row.Metric)
			med[s.Key] = Median(vals)
			cell := FormatValue(med[s.Key], row.Unit)
			if len(vals) > 0 {
				cell += fmt.Sprintf(" <sub>n=%d</sub>", len(vals))
				if s.Key != row.RefSystem && !isRef[s.Key] && !math.IsNaN(rowBase) && rowBase != 0 {
					refName := name[row.RefSystem]
					if refName == "" {
						refName = row.RefSystem
					}
					cell += fmt.Sprintf(" (%.2f× %s)", med[s.Key]/rowBase, refName)
				}
			}
			fmt.Fprintf(&b, " %s |", cell)
		}
		for _, k := range refs {
			base := Median(r.values(refLabel, k, refMetric))
			var parts []string
			for _, s := range systems {
				if isRef[s.Key] || math.IsNaN(med[s.Key]) || math.IsNaN(base) || base == 0 {
					continue
				}
				parts = append(parts, fmt.Sprintf("%s %.2f×", s.Name, med[s.Key]/base))
			}
			if len(parts) == 0 {
				parts = []string{"—"}
			}
			fmt.Fprintf(&b, " %s |", strings.Join(parts, "<br>"))
		}
		if gen {
			fmt.Fprintf(&b, " %s |", r.genCell(row, systems))
		}
		b.WriteString("\n")
	}
	_, _ = io.WriteString(w, b.String())
}

// genCell is a row's generator CPU per message: the median for each system that has it,
// named when more than one does.
func (r *Report) genCell(row ReportRow, systems []ReportSystem) string {
	var names, vals []string
	for _, s := range systems {
		if v, ok := r.Median(row.Label, s.Key, row.Gen); ok && row.Gen != "" {
			names, vals = append(names, s.Name), append(vals, FormatValue(v, "µs"))
		}
	}
	switch len(vals) {
	case 0:
		return "—"
	case 1:
		return vals[0]
	}
	for i := range vals {
		vals[i] = names[i] + " " + vals[i]
	}
	return strings.Join(vals, "<br>")
}

// WriteRuns writes every run's value, for the record.
func (r *Report) WriteRuns(w io.Writer, systems []ReportSystem, rows []ReportRow) {
	var b strings.Builder
	b.WriteString("| | system | runs |\n|---|---|---|\n")
	for _, row := range rows {
		for _, s := range systems {
			vals := r.values(row.Label, s.Key, row.Metric)
			if len(vals) == 0 {
				continue
			}
			cells := make([]string, len(vals))
			for i, v := range vals {
				cells[i] = FormatValue(v, row.Unit)
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", row.Title, s.Name, strings.Join(cells, ", "))
		}
	}
	_, _ = io.WriteString(w, b.String())
}

// WriteFailures lists the runs that failed their checks (ok false), if any; it reports
// whether there were any.
func (r *Report) WriteFailures(w io.Writer) bool {
	var b strings.Builder
	for _, m := range r.results {
		if ok, present := m["ok"].(bool); !present || ok {
			continue
		}
		var why []string
		if fs, ok := m["failures"].([]any); ok {
			for _, f := range fs {
				why = append(why, fmt.Sprint(f))
			}
		}
		fmt.Fprintf(&b, "- %v on %v: %s\n", m["label"], m["system"], strings.Join(why, "; "))
	}
	_, _ = io.WriteString(w, b.String())
	return b.Len() > 0
}

// TargetResult is a target's verdict.
type TargetResult struct {
	Target   ReportTarget
	Measured float64 // median
	Goal     float64 // the value compared with
	Met      bool
	Missing  bool // no results to judge
}

// CheckTargets judges each target on the medians.
func (r *Report) CheckTargets(targets []ReportTarget) []TargetResult {
	var out []TargetResult
	for _, t := range targets {
		tr := TargetResult{Target: t, Measured: Median(r.values(t.Label, t.System, t.Metric)), Goal: t.Value}
		if t.RefSystem != "" {
			tr.Goal = t.Value * Median(r.values(t.RefLabel, t.RefSystem, t.Metric))
		}
		if math.IsNaN(tr.Measured) || math.IsNaN(tr.Goal) {
			tr.Missing = true
			out = append(out, tr)
			continue
		}
		switch t.Op {
		case ">=":
			tr.Met = tr.Measured >= tr.Goal
		case "<=":
			tr.Met = tr.Measured <= tr.Goal
		case ">":
			tr.Met = tr.Measured > tr.Goal
		case "<":
			tr.Met = tr.Measured < tr.Goal
		}
		out = append(out, tr)
	}
	return out
}

// WriteTargets writes the verdicts as a markdown list.
func WriteTargets(w io.Writer, results []TargetResult) {
	var b strings.Builder
	for _, tr := range results {
		t := tr.Target
		switch {
		case tr.Missing:
			fmt.Fprintf(&b, "- **not measured** — %s\n", t.Text)
		default:
			verdict := "**met**"
			if !tr.Met {
				verdict = "**missed**"
			}
			goal := FormatValue(tr.Goal, t.Unit)
			if t.RefSystem != "" {
				goal = fmt.Sprintf("%s (%g × %s)", goal, t.Value, t.RefSystem)
			}
			fmt.Fprintf(&b, "- %s — %s: measured %s, target %s %s\n", verdict, t.Text,
				FormatValue(tr.Measured, t.Unit), t.Op, goal)
		}
	}
	_, _ = io.WriteString(w, b.String())
}
