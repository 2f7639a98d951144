// Package cli implements the switchboard command line: one subcommand per role plus the
// operator commands. Run is the whole program; main only wires signals and exit codes.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed
	exitUsage = 2 // bad flags or arguments
)

// env is what a command gets to work with.
type env struct {
	stdout, stderr io.Writer
	probe          *probe // set by `config`: stop a role's command early (config.go)
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func commands() []command {
	return []command{
		{"up", "run a whole cluster on this machine (nodes, router, monitor, backends)", runUp},
		{"node", "run a broker node", runNode},
		{"router", "run a router: the HTTP API that sends messages to clients", runRouter},
		{"monitor", "run a health monitor (several may run; one leads)", runMonitor},
		{"status", "show the live nodes, quarantines and the monitor leader", runStatus},
		{"zk", "ZooKeeper tools: `zk status` shows every server's mode and whether a quorum serves", runZK},
		{"send", "send a message to a client through a router", runSend},
		{"mailbox", "show a client's mailbox", runMailbox},
		{"quarantine", "take a node out of service by hand: quarantine NODE --reason \"...\"", runQuarantine},
		{"release", "lift a node's quarantine: release NODE", runRelease},
		{"config", "check a config file (config check FILE) or print every setting with its default (config example)", runConfig},
		{"passwd", "set a user's password in the credentials file: passwd FILE USER (password on stdin)", runPasswd},
		{"backends", "start a ZooKeeper ensemble and a Redis on this machine for development", runBackends},
		{"bench", "load generator: bench direct|pubsub|fanout|connect|report", runBench},
		{"version", "print the version and the commit it was built from (--json; also --version)", runVersion},
	}
}

// usageError marks errors caused by bad arguments (exit status 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitCodeError carries a specific exit status with its message.
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string { return e.err.Error() }

// Run runs the command line args and returns the exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := env{stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...) // as etcd and redis-server take it
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		var ue usageError
		var ce exitCodeError
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "switchboard %s: %v\n", c.name, err)
			return exitUsage
		case errors.As(err, &ce):
			if ce.err != nil && ce.err.Error() != "" {
				fmt.Fprintf(stderr, "switchboard %s: %v\n", c.name, ce.err)
			}
			return ce.code
		default:
			fmt.Fprintf(stderr, "switchboard %s: %v\n", c.name, err)
			return exitError
		}
	}
	fmt.Fprintf(stderr, "switchboard: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: switchboard <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `switchboard <command> -h` for a command's flags. Every flag can also be set")
	fmt.Fprintln(w, "through the environment: --session-timeout is SWITCHBOARD_SESSION_TIMEOUT; a role's")
	fmt.Fprintln(w, "also in its --config file (`switchboard config example` shows every setting).")
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
