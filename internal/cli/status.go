package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// clusterStatus is what `switchboard status` reports.
type clusterStatus struct {
	Nodes         []coord.Member     `json:"nodes"`
	Quarantined   []coord.Quarantine `json:"quarantined"`
	MonitorLeader string             `json:"monitor_leader,omitempty"`
}

func runStatus(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("status", e)
	var (
		zo     coordOptions
		asJSON bool
	)
	zo.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	warnSecrets(fs, stderrLogger(e))
	c, err := zo.openDiscovered(ctx, fs, e)
	if err != nil {
		return err
	}
	defer c.Close()
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var st clusterStatus
	if st.Nodes, err = c.Members(qctx); err != nil {
		return err
	}
	if st.Quarantined, err = c.Quarantines(qctx); err != nil {
		return err
	}
	candidate, err := c.Leader(qctx, "monitor")
	if err != nil && !errors.Is(err, coord.ErrNotFound) {
		return err
	}
	if candidate != "" {
		st.MonitorLeader = coord.ParseCandidate(candidate).ID // its admin address is for dashboards
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tMQTT\tINTERNAL\tADMIN\tEPOCH\tVERSION\tSTARTED") // the process, not this registration (see EPOCH)
	for _, m := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%#x\t%s\t%s\n", m.ID, m.MQTTAddr, m.InternalAddr, m.AdminAddr, m.Epoch,
			m.Version, m.StartedAt.Format(time.RFC3339))
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "%d live node(s)\n", len(st.Nodes))
	if len(st.Quarantined) > 0 {
		fmt.Fprintln(e.stdout, "\nQUARANTINED")
		writeQuarantines(e.stdout, st.Quarantined)
	}
	leader := st.MonitorLeader
	if leader == "" {
		leader = "none"
	}
	fmt.Fprintf(e.stdout, "monitor leader: %s\n", leader)
	return nil
}

// writeQuarantines prints the QUARANTINED table: a line a mark, its evidence cut short
// (the monitor's holds every probe round it saw; `status --json` prints it whole).
func writeQuarantines(w io.Writer, qs []coord.Quarantine) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSINCE\tBY\tREASON\tEVIDENCE")
	for _, q := range qs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", q.Node, q.At.Format(time.RFC3339), q.By, q.Reason, evidenceSummary(q.Evidence))
	}
	tw.Flush()
}

// evidenceMax is how much of a mark's evidence the status table shows.
const evidenceMax = 60

// evidenceSummary is the evidence JSON on one line, cut after evidenceMax characters with
// a pointer to --json; "-" when there is none.
func evidenceSummary(ev []byte) string {
	if len(bytes.TrimSpace(ev)) == 0 {
		return "-"
	}
	var buf bytes.Buffer
	var text string
	if json.Compact(&buf, ev) == nil {
		text = buf.String()
	} else {
		text = strings.Join(strings.Fields(string(ev)), " ") // not JSON: still one line
	}
	if utf8.RuneCountInString(text) <= evidenceMax {
		return text
	}
	r := []rune(text)
	return string(r[:evidenceMax]) + "… (see status --json)"
}
