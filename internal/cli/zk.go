package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchboard-mqtt/switchboard/zkstat"
)

func runZK(ctx context.Context, e env, args []string) error {
	const usage = "usage: switchboard zk status --zk host:port,... [--json]"
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprintln(e.stdout, usage) // asked for: not an error, as every other command's -h
		return nil
	}
	if len(args) == 0 || args[0] != "status" {
		return usagef(usage)
	}
	fs := newFlagSet("zk status", e)
	var (
		servers string
		asJSON  bool
		timeout time.Duration
	)
	fs.StringVar(&servers, "zk", "", "ZooKeeper servers, comma-separated host:port")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	fs.DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for each server")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	addrs := splitList(servers)
	if len(addrs) == 0 {
		return usagef("--zk is required")
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st := zkstat.Query(qctx, addrs)
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVER\tMODE\tVERSION\tZXID\tLATENCY min/avg/max\tCONNS\tOUTSTANDING\tZNODES\tERROR")
		for _, s := range st.Servers {
			mode := s.Mode
			if mode == "" {
				mode = "-"
			}
			lat := "-"
			if s.Error == "" {
				lat = fmt.Sprintf("%g/%g/%g", s.LatencyMin, s.LatencyAvg, s.LatencyMax)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", s.Addr, mode, dash(s.Version), dash(s.Zxid), lat,
				s.Connections, s.Outstanding, s.NodeCount, s.Error)
		}
		tw.Flush()
		if st.Quorum {
			fmt.Fprintf(e.stdout, "quorum: yes (%d of %d serving, leader %s)\n", st.Serving, len(addrs), st.Leader)
		} else {
			fmt.Fprintf(e.stdout, "quorum: NO (%s)\n", noQuorum(st, len(addrs)))
		}
	}
	if !st.Quorum {
		return exitCodeError{code: exitError, err: fmt.Errorf("no serving quorum: %s; not serving: %s",
			noQuorum(st, len(addrs)), strings.Join(notServing(st), "; "))}
	}
	return nil
}

// noQuorum says why there is no quorum. Followers of a leader that stopped answering (frozen,
// partitioned off) still say they follow until they notice, syncLimit ticks later: that is
// no leader, not servers serving.
func noQuorum(st zkstat.Ensemble, n int) string {
	if st.Leader == "" && st.Serving > 0 {
		return fmt.Sprintf("no leader answers; %d of %d answer as its followers", st.Serving, n)
	}
	return fmt.Sprintf("%d of %d serving", st.Serving, n)
}

// notServing describes each server that is not in a serving quorum, by address, so the
// error says which servers to look at even with --json, where stdout goes to a program.
func notServing(st zkstat.Ensemble) []string {
	var out []string
	for _, s := range st.Servers {
		if s.Serving() {
			continue
		}
		why := s.Error
		if why == "" {
			why = "mode " + dash(s.Mode)
		}
		// Word's errors already start with the address; Parse's do not.
		if !strings.HasPrefix(why, s.Addr) {
			why = s.Addr + ": " + why
		}
		out = append(out, why)
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
