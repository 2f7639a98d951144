package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/switchboard-mqtt/switchboard/auth"
)

func runPasswd(_ context.Context, e env, args []string) error {
	return passwd(e, os.Stdin, args)
}

// passwd is `switchboard passwd FILE USER`: it reads the password from stdin and writes
// its bcrypt hash into the credentials file.
func passwd(e env, stdin io.Reader, args []string) error {
	fs := newFlagSet("passwd", e)
	var (
		noPrompt bool
		clients  string
	)
	fs.BoolVar(&noPrompt, "password-stdin", false, "read the password from standard input without a prompt (for scripts)")
	fs.StringVar(&clients, "clients", "", "client ids the user may connect with, comma-separated; '*' as a suffix, %u the username (default: keep, or [\"%u\"] for a new user)")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: switchboard passwd FILE USER [--clients \"a,b-*\"] [--password-stdin]")
		fmt.Fprintln(e.stderr, "\nSets USER's password in the credentials file FILE (created if missing), reading it from")
		fmt.Fprintln(e.stderr, "one line of standard input, and stores only its bcrypt hash.")
		fs.PrintDefaults()
	}
	if err := parse(fs, reorderFlags(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("usage: switchboard passwd FILE USER [--clients \"a,b-*\"] [--password-stdin]")
	}
	file, user := fs.Arg(0), fs.Arg(1)
	var clientList []string
	if clients != "" {
		clientList = splitList(clients)
		if len(clientList) == 0 {
			return usagef("--clients %q: no client ids", clients)
		}
	}
	if !noPrompt && isTerminal(stdin) {
		fmt.Fprintf(e.stderr, "password for %s (input is shown): ", user)
	}
	pw, err := readPasswordLine(stdin)
	if err != nil {
		return err
	}
	if err := auth.SetUser(file, user, pw, clientList); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "set password for %s in %s\n", user, file)
	if err := auth.ValidateFile(file); err != nil {
		fmt.Fprintf(e.stderr, "warning: the server will refuse this file until it is fixed: %v\n", err)
	}
	return nil
}

// readPasswordLine reads one line (without its line ending) and refuses an empty one.
func readPasswordLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read password: %w", err)
	}
	line = []byte(strings.TrimRight(string(line), "\r\n"))
	if len(line) == 0 {
		return nil, errors.New("the password is empty")
	}
	return line, nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// reorderFlags moves flags ahead of positional arguments (the flag package stops at the
// first positional one), asking fs which flags take no value. A flag that wants a value
// but comes last without one ends the arguments, so that Parse reports it as missing its
// value (rather than taking the "--" put before the positional arguments as the value).
func reorderFlags(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // reported by Parse
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 >= len(args) {
			return flags
		}
		flags = append(flags, args[i+1])
		i++
	}
	return append(flags, append([]string{"--"}, pos...)...)
}
