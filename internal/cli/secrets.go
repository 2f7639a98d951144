package cli

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
)

// secretValue is the flag.Value of a secret. It never prints its value (flag's usage and
// error messages call String), and parse marks it when it was given on the command line,
// where every user of the machine can read it in the process list.
type secretValue struct {
	dst           *string
	name          string // the flag, without dashes
	fileFlag      string // the flag naming a file that holds it instead; "" when there is none
	onCommandLine bool
}

func (v *secretValue) String() string { return "" }

func (v *secretValue) Set(s string) error {
	*v.dst = s
	return nil
}

// markCommandLine is called by parse for a flag given on the command line (not through
// the environment).
func (v *secretValue) markCommandLine() { v.onCommandLine = true }

// commandLineMarker is a flag.Value that wants to know it was given on the command line.
type commandLineMarker interface{ markCommandLine() }

// envName is the environment variable parse reads a flag from.
func envName(flagName string) string {
	return "SWITCHBOARD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// secretVar defines a secret flag with no file form (a password or token for a one-shot
// command, or a probe's credentials): it warns when given on the command line.
func secretVar(fs *flag.FlagSet, dst *string, name, usage string) {
	fs.Var(&secretValue{dst: dst, name: name}, name, usage+" (prefer "+envName(name)+": a flag's value is visible in the process list)")
}

// secretFlag is a secret given as --NAME (or SWITCHBOARD_NAME), or read from the file that
// --NAME-file names. Giving both is an error.
type secretFlag struct {
	value string
	file  string
	v     secretValue
}

// register defines --name and --name-file on fs.
func (s *secretFlag) register(fs *flag.FlagSet, name, what string) {
	s.v = secretValue{dst: &s.value, name: name, fileFlag: name + "-file"}
	fs.Var(&s.v, name, what+" (prefer --"+name+"-file or "+envName(name)+": a flag's value is visible in the process list)")
	fs.StringVar(&s.file, name+"-file", "", "file holding "+what+" (surrounding white space is trimmed); instead of --"+name)
}

// get returns the secret ("" when none is given). Errors name the flags, never the secret.
func (s *secretFlag) get() (string, error) {
	if s.file == "" {
		return s.value, nil
	}
	if s.value != "" {
		return "", usagef("give --%s (or %s) or --%s, not both", s.v.name, envName(s.v.name), s.v.fileFlag)
	}
	b, err := os.ReadFile(s.file)
	if err != nil {
		return "", usagef("--%s: %v", s.v.fileFlag, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", usagef("--%s %s: the file is empty", s.v.fileFlag, s.file)
	}
	return v, nil
}

// secretFiles are the flags that name a file of secrets besides a secretFlag's --NAME-file.
var secretFiles = []string{"api-tokens", "auth-file", "admin-token-file", "jwt-hs256-secret-file"}

// warnSecrets logs a warning for each secret on fs that was given on the command line, and
// for each file of secrets that every user of the machine may read. Call it once the command
// has its logger.
func warnSecrets(fs *flag.FlagSet, log *slog.Logger) {
	fs.VisitAll(func(f *flag.Flag) {
		isFile := slices.Contains(secretFiles, f.Name)
		if b := fs.Lookup(strings.TrimSuffix(f.Name, "-file")); b != nil {
			if v, ok := b.Value.(*secretValue); ok && v.fileFlag == f.Name {
				isFile = true
			}
		}
		if path := f.Value.String(); isFile && path != "" {
			if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o004 != 0 {
				log.Warn(fmt.Sprintf("--%s %s is readable by every user of this machine; make it private (chmod o-rwx)",
					f.Name, path), "flag", "--"+f.Name, "mode", st.Mode().Perm().String())
			}
		}
	})
	fs.Visit(func(f *flag.Flag) {
		if u, ok := f.Value.(*urlFlag); ok && u.onCommandLine && hasURLPassword(*u.dst) {
			log.Warn(fmt.Sprintf("--%s was given on the command line with a password in its URL, where any user of this machine can read it in the process list; use %s instead",
				u.name, u.instead), "flag", "--"+u.name)
			return
		}
		v, ok := f.Value.(*secretValue)
		if !ok || !v.onCommandLine || *v.dst == "" {
			return
		}
		instead := envName(v.name)
		if v.fileFlag != "" {
			instead = "--" + v.fileFlag + " or " + instead
		}
		log.Warn(fmt.Sprintf("--%s was given on the command line, where any user of this machine can read it in the process list; use %s instead",
			v.name, instead), "flag", "--"+v.name)
	})
}

// stderrLogger is the logger of a one-shot command that has no logging flags: warnings
// only, as text on stderr.
func stderrLogger(e env) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// minClusterToken is the length below which a cluster token is easy to guess.
const minClusterToken = 16

// warnShortToken warns about a cluster token short enough to guess.
func warnShortToken(log *slog.Logger, token string) {
	if token != "" && len(token) < minClusterToken {
		log.Warn("the cluster token is short enough to guess; use a random one of at least 16 characters",
			"length", len(token))
	}
}
