package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
)

// runConfig is `switchboard config check FILE [--role R]` and `switchboard config example`.
func runConfig(_ context.Context, e env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return configCheck(e, args[1:])
		case "example":
			if len(args) > 1 {
				return usagef("usage: switchboard config example > switchboard.yaml")
			}
			return writeExample(e.stdout, false)
		}
	}
	w := e.stderr
	fmt.Fprintln(w, "usage: switchboard config check FILE [--role node|router|monitor|up]")
	fmt.Fprintln(w, "       switchboard config example")
	fmt.Fprintln(w, "\ncheck validates FILE as the roles do (the same checks, nothing started) and prints each")
	fmt.Fprintln(w, "role's effective configuration, secrets redacted; example prints every setting with its")
	fmt.Fprintln(w, "default. A role reads the file given with --config (or SWITCHBOARD_CONFIG).")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		return flag.ErrHelp
	}
	return usagef("want check or example")
}

// configCheck runs each role's command on the file up to the point where the role has
// validated its configuration, and prints what the role would run with.
func configCheck(e env, args []string) error {
	fs := newFlagSet("config check", e)
	var role string
	fs.StringVar(&role, "role", "", "check this role only: node, router, monitor or up (default: each role the file has a section for)")
	if err := parse(fs, reorderFlags(fs, args)); err != nil {
		return err
	}
	path := fs.Arg(0)
	if fs.NArg() == 0 {
		path = os.Getenv("SWITCHBOARD_CONFIG")
	}
	if path == "" || fs.NArg() > 1 {
		return usagef("usage: switchboard config check FILE [--role node|router|monitor|up]")
	}
	if role != "" && !slices.Contains(roleNames(), role) {
		return usagef("--role %q: want node, router, monitor or up", role)
	}
	f, err := loadConfigFile(path)
	if err != nil {
		return exitCodeError{code: exitError, err: err}
	}
	roles := []string{role}
	if role == "" {
		roles = slices.DeleteFunc(slices.Clone(f.sections), func(s string) bool { return !slices.Contains(roleNames(), s) })
		if len(roles) == 0 {
			return usagef("%s has no role section (%s): give --role to check the shared sections for one",
				path, strings.Join(roleNames(), ", "))
		}
	}
	var failed []error
	for i, r := range roles {
		p := &probe{stage: probeValidated}
		err := runRole(r, env{stdout: io.Discard, stderr: e.stderr}, p, []string{"--config", path})
		switch {
		case errors.Is(err, errProbed):
			if i > 0 {
				fmt.Fprintln(e.stdout, "---")
			}
			writeEffective(e.stdout, r, p.fs, f)
		case err == nil:
			failed = append(failed, fmt.Errorf("%s: the command ran past its checks", r)) // a missing validated call
		default:
			failed = append(failed, fmt.Errorf("%s: %w%s", r, err, whereFlags(err, p.fs, f, r)))
		}
	}
	if len(failed) > 0 {
		return exitCodeError{code: exitError, err: fmt.Errorf("%s is not valid:\n%w", path, errors.Join(failed...))}
	}
	return nil
}

var flagMention = regexp.MustCompile(`--([a-z0-9][a-z0-9-]*)`)

// whereFlags says, for each flag an error names, where its value came from: the role's
// errors name flags (--max-wait), and the file calls them keys (node.max-wait).
func whereFlags(err error, fs *flag.FlagSet, f *configFile, role string) string {
	if fs == nil {
		return ""
	}
	var b strings.Builder
	seen := map[string]bool{}
	for _, m := range flagMention.FindAllStringSubmatch(err.Error(), -1) {
		name := m[1]
		fl := fs.Lookup(name)
		if fl == nil || seen[name] {
			continue
		}
		seen[name] = true
		fmt.Fprintf(&b, "\n  --%s is %s: %s", name, keyOf(f, role, name), sourceOf(f, role, fl))
	}
	return b.String()
}

// keyOf names the key a role's flag is read from.
func keyOf(f *configFile, role, name string) string {
	if en, ok := f.lookup(role, name); ok {
		return en.section + "." + name
	}
	if sec, ok := f.shared[name]; ok {
		return sec + "." + name + " (or " + role + "." + name + ")"
	}
	return role + "." + name
}

// sourceOf says where a flag's value came from, as parse took it (config check gives no
// flags but --config).
func sourceOf(f *configFile, role string, fl *flag.Flag) string {
	names := namesOf(fl.Name)
	for _, n := range names {
		if _, ok := os.LookupEnv(envName(n)); ok {
			return envName(n)
		}
	}
	for _, n := range names {
		if en, ok := f.lookup(role, n); ok {
			return f.where(en.key0)
		}
	}
	return "default"
}

// writeEffective prints a role's effective configuration as YAML, each value followed by
// its source; every secret is redacted.
func writeEffective(w io.Writer, role string, fs *flag.FlagSet, f *configFile) {
	fmt.Fprintf(w, "# %s: valid. Its effective configuration, secrets redacted, each value with where it came from\n", role)
	fmt.Fprintf(w, "# (precedence: flag > SWITCHBOARD_* variable > %s > shared section > default).\n", role)
	inShared := map[string]bool{}
	for _, s := range sharedSections() {
		s.flags.VisitAll(func(fl *flag.Flag) { inShared[fl.Name] = true })
		writeEffectiveSection(w, s.name, fs, f, role, func(fl *flag.Flag) bool { return s.flags.Lookup(fl.Name) != nil })
	}
	writeEffectiveSection(w, role, fs, f, role, func(fl *flag.Flag) bool { return !inShared[fl.Name] && fl.Name != "config" })
}

func writeEffectiveSection(w io.Writer, section string, fs *flag.FlagSet, f *configFile, role string, in func(*flag.Flag) bool) {
	fmt.Fprintf(w, "%s:\n", section)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(fl *flag.Flag) {
		if !in(fl) || isAlias(fl.Name) {
			return
		}
		if v, ok := fl.Value.(*secretValue); ok {
			if *v.dst != "" { // only ever from the environment (or a flag): never the file
				fmt.Fprintf(tw, "  # %s: <redacted>\t# %s\n", fl.Name, sourceOf(f, role, fl))
			}
			return
		}
		fmt.Fprintf(tw, "  %s: %s\t# %s\n", fl.Name, effectiveValue(fl), sourceOf(f, role, fl))
	})
	tw.Flush()
}

// effectiveValue is a flag's value as YAML, redacted if it may be a secret: a URL's
// password, or the value of any key named like a secret unless the flag takes a file (a
// *-file key, or one whose help starts "file"), whose path is not the secret.
func effectiveValue(fl *flag.Flag) string {
	v := fl.Value.String() // a urlFlag prints itself redacted
	takesFile := strings.HasSuffix(fl.Name, "-file") || strings.HasPrefix(fl.Usage, "file ")
	if v != "" && secretName(fl.Name) && !takesFile {
		v = "<redacted>"
	}
	if isTextFlag(fl) {
		return yamlQuote(v)
	}
	return v
}

// secretName reports whether a key is named like a secret.
func secretName(name string) bool {
	for _, w := range []string{"password", "passwd", "secret", "token", "credential", "private"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return name == "zk-auth"
}

// isTextFlag reports whether a flag takes free text (quoted in YAML) rather than a
// number, duration or boolean.
func isTextFlag(fl *flag.Flag) bool {
	g, ok := fl.Value.(flag.Getter)
	if !ok {
		return true
	}
	_, isString := g.Get().(string)
	return isString
}

// yamlQuote quotes s as a YAML double-quoted scalar (JSON's string syntax is one).
func yamlQuote(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // <hostname>, not \u003chostname\u003e
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
