package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The config file is YAML: one section per role (node, router, monitor, up) and shared
// sections (log, coordination, store), so one file can serve every role on a machine. Its
// keys are the flags' names and its values what the flags take, so the file's schema is
// the flags themselves and cannot drift from them. A value is taken from the role's own
// section, else from the shared section that holds the flag; a flag or an environment
// variable overrides both:
//
//	flag > SWITCHBOARD_* environment variable > [role] > [shared section] > default
//
// Secrets are never values in the file (it is copied, committed and printed more than a
// secret should be): their *-file flags or environment variables are the way.

// sharedSection is a section of the file that every role reads: the flags of one of the
// option groups every role registers.
type sharedSection struct {
	name  string
	title string        // what the example says of it
	flags *flag.FlagSet // its flags, at their defaults
}

// sharedSections returns the shared sections, in the order the example lists them. Their
// flags come from the same register methods the roles call, so a flag added to a group is
// a key of its section at once.
func sharedSections() []sharedSection {
	var (
		lo logOptions
		co coordOptions
		ro redisOptions
	)
	return []sharedSection{
		{"log", "Logging, for every role.", flagsOf(lo.register)},
		{"coordination", "Coordination, for every role: a ZooKeeper ensemble (zk) or an etcd cluster (etcd).", flagsOf(co.register)},
		{"store", "The store of presence and mailboxes, for every role: Redis.", flagsOf(ro.register)},
	}
}

func flagsOf(register func(*flag.FlagSet)) *flag.FlagSet {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	register(fs)
	return fs
}

// setDefault gives a flag a shared group registered another default for one command
// (up's session timeout): -h and the example show it.
func setDefault(fs *flag.FlagSet, name, value string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("setDefault: no flag " + name) // a mistake in this package, found by any run
	}
	if err := f.Value.Set(value); err != nil {
		panic(fmt.Sprintf("setDefault %s %q: %v", name, value, err))
	}
	f.DefValue = f.Value.String()
}

// roleNames are the commands that read a config file, each from its own section.
func roleNames() []string { return []string{"node", "router", "monitor", "up"} }

// A probe stops a role's command early: at its flags, so the file's schema can be the
// role's own flag set, or once its configuration is validated, so `config check` runs the
// very checks the role runs and nothing after them.
type probe struct {
	stage probeStage
	fs    *flag.FlagSet // the role's flags where it stopped
}

type probeStage int

const (
	// probeFlags stops in parse once the flags are defined, before the environment or a
	// file is read.
	probeFlags probeStage = iota + 1
	// probeValidated stops at validated: every setting checked, nothing bound or dialled.
	probeValidated
)

// errProbed is what a role's command returns when a probe stopped it.
var errProbed = errors.New("stopped by a configuration probe")

// validated marks the point in a role's command where its whole configuration has been
// checked and nothing has been bound or dialled yet; `config check` stops it here.
func (e env) validated(fs *flag.FlagSet) error {
	if e.probe == nil || e.probe.stage != probeValidated {
		return nil
	}
	e.probe.fs = fs
	return errProbed
}

// runRole runs the command of role under p, with a context that is already cancelled
// (should a probe point ever be missed, nothing that starts would keep running).
func runRole(role string, e env, p *probe, args []string) error {
	for _, c := range commands() {
		if c.name == role {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			e.probe = p
			return c.run(ctx, e, args)
		}
	}
	return fmt.Errorf("no command %q", role)
}

// roleFlags returns the flags role defines, at their defaults.
func roleFlags(role string) (*flag.FlagSet, error) {
	p := &probe{stage: probeFlags}
	err := runRole(role, env{stdout: io.Discard, stderr: io.Discard}, p, nil)
	if !errors.Is(err, errProbed) || p.fs == nil {
		return nil, fmt.Errorf("the %s command did not stop at its flags: %v", role, err)
	}
	return p.fs, nil
}

// newRoleFlagSet is newFlagSet for a role's command: it adds --config, which parse reads.
func newRoleFlagSet(role string, e env) *flag.FlagSet {
	fs := newFlagSet(role, e)
	fs.Var(&configFlag{role: role, probe: e.probe}, "config",
		"YAML config `file`: the "+role+" section and the shared ones (flags and SWITCHBOARD_* variables override it; see `switchboard config example`)")
	return fs
}

// configFlag is the value of --config.
type configFlag struct {
	role  string
	path  string
	probe *probe
}

func (c *configFlag) String() string {
	if c == nil {
		return ""
	}
	return c.path
}

func (c *configFlag) Set(s string) error {
	c.path = s
	return nil
}

// roleConfig returns the --config of a role's flag set (nil for other commands).
func roleConfig(fs *flag.FlagSet) *configFlag {
	f := fs.Lookup("config")
	if f == nil {
		return nil
	}
	c, _ := f.Value.(*configFlag)
	return c
}

// apply sets every flag of fs not in given (set on the command line or in the
// environment) that the file has a value for.
func (c *configFlag) apply(fs *flag.FlagSet, given map[string]bool) error {
	f, err := loadConfigFile(c.path)
	if err != nil {
		return usageError{err}
	}
	var errs []error
	fs.VisitAll(func(fl *flag.Flag) {
		if given[fl.Name] || fl.Name == "config" {
			return
		}
		en, ok := f.lookup(c.role, fl.Name)
		if !ok {
			return
		}
		if now, alias := flagAliases[fl.Name]; alias {
			if _, ok := f.lookup(c.role, now); ok {
				return // the new name's key wins
			}
		}
		if err := fs.Set(fl.Name, en.value); err != nil {
			errs = append(errs, f.valueError(en, fl, err))
		}
	})
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	return nil
}

// configFile is a parsed config file.
type configFile struct {
	path     string
	sections []string                           // in the file's order
	entries  map[string]map[string]*configEntry // section → key → entry
	at       map[string]position                // where each section starts
	shared   map[string]string                  // flag → the shared section that holds it
	errs     []fileError                        // the mistakes found
}

// configEntry is one key's value.
type configEntry struct {
	section, key string
	value        string   // the text handed to the flag (a list joined with commas)
	key0, val0   position // where the key and the value start
}

type position struct{ line, col int }

// fileError is one mistake in a config file, where it is.
type fileError struct {
	path string
	at   position
	msg  string
}

func (e fileError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.path, e.at.line, e.at.col, e.msg)
}

func (f *configFile) errorf(at position, format string, args ...any) {
	f.errs = append(f.errs, fileError{path: f.path, at: at, msg: fmt.Sprintf(format, args...)})
}

// err returns every mistake found, in the file's order (nil when there is none).
func (f *configFile) err() error {
	slices.SortStableFunc(f.errs, func(a, b fileError) int {
		if a.at.line != b.at.line {
			return a.at.line - b.at.line
		}
		return a.at.col - b.at.col
	})
	errs := make([]error, len(f.errs))
	for i, e := range f.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func (f *configFile) where(p position) string { return fmt.Sprintf("%s:%d:%d", f.path, p.line, p.col) }

// lookup returns the value a role's flag takes from the file: its own section's, else the
// shared section's that holds it.
func (f *configFile) lookup(role, name string) (*configEntry, bool) {
	if en, ok := f.entries[role][name]; ok {
		return en, true
	}
	if sec, ok := f.shared[name]; ok {
		en, ok := f.entries[sec][name]
		return en, ok
	}
	return nil, false
}

// loadConfigFile reads and checks a config file: its sections and keys must all be known
// and every value must be one its flag takes. The error lists every mistake.
func loadConfigFile(path string) (*configFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	f, err := parseConfigFile(path, b)
	if err != nil {
		return nil, err
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// firstIndentTab finds the first tab in the leading white space of a line of b: YAML
// forbids tabs there, and editors insert them.
func firstIndentTab(b []byte) (line, col int, ok bool) {
	for i, l := range bytes.Split(b, []byte("\n")) {
		for j, c := range l {
			if c == '\t' {
				return i + 1, j + 1, true
			}
			if c != ' ' {
				break
			}
		}
	}
	return 0, 0, false
}

// parseConfigFile reads the YAML: a mapping of sections, each a mapping of keys to
// scalars or lists of scalars. It knows nothing of which keys exist. It returns an error
// for YAML it cannot read; shape mistakes it records (see err) and goes on.
func parseConfigFile(path string, b []byte) (*configFile, error) {
	f := &configFile{path: path, entries: map[string]map[string]*configEntry{}, at: map[string]position{},
		shared: map[string]string{}}
	for _, s := range sharedSections() {
		s.flags.VisitAll(func(fl *flag.Flag) { f.shared[fl.Name] = s.name })
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return f, nil // an empty file sets nothing
		}
		if line, col, ok := firstIndentTab(b); ok {
			// yaml.v3 says only "found character that cannot start any token".
			return nil, fmt.Errorf("%s:%d:%d: a tab indents this line: YAML indents with spaces only (%w)", path, line, col, err)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s:%d: one YAML document expected (a config file has no ---)", path, extra.Line)
	}
	root := deref(&doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = deref(root.Content[0])
	}
	if isNull(root) {
		return f, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d:%d: want a mapping of sections (log, coordination, store, %s)",
			path, root.Line, root.Column, strings.Join(roleNames(), ", "))
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], deref(root.Content[i+1])
		sec, at := k.Value, position{k.Line, k.Column}
		if first, dup := f.at[sec]; dup {
			f.errorf(at, "section %s appears twice (first at line %d)", sec, first.line)
			continue
		}
		f.sections = append(f.sections, sec)
		f.at[sec] = at
		f.entries[sec] = map[string]*configEntry{}
		if isNull(v) {
			continue // a section with every key commented out
		}
		if v.Kind != yaml.MappingNode {
			f.errorf(position{v.Line, v.Column}, "%s: want a mapping of keys to values", sec)
			continue
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			kk, vv := v.Content[j], deref(v.Content[j+1])
			en := &configEntry{section: sec, key: kk.Value, key0: position{kk.Line, kk.Column}, val0: position{vv.Line, vv.Column}}
			if first, dup := f.entries[sec][kk.Value]; dup {
				f.errorf(en.key0, "%s.%s appears twice (first at line %d)", sec, kk.Value, first.key0.line)
				continue
			}
			switch {
			case isNull(vv):
				continue // no value: the key is not set
			case vv.Kind == yaml.ScalarNode:
				en.value = vv.Value
			case vv.Kind == yaml.SequenceNode:
				var items []string
				for _, it := range vv.Content {
					if it = deref(it); it.Kind != yaml.ScalarNode || isNull(it) {
						f.errorf(position{it.Line, it.Column}, "%s.%s: a list holds plain values only", sec, kk.Value)
						continue
					}
					items = append(items, it.Value)
				}
				en.value = strings.Join(items, ",")
			default:
				f.errorf(en.val0, "%s.%s: want a value or a list of values, not a mapping", sec, kk.Value)
				continue
			}
			f.entries[sec][kk.Value] = en
		}
	}
	return f, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// check records unknown sections and keys, secrets, and values their flag does not take.
// Every section is checked, not only the running role's, so a mistake in another role's
// section shows on whichever role reads the file first. Its error is for a role whose
// flags could not be learnt, not for the file.
func (f *configFile) check() error {
	known := map[string]*flag.FlagSet{}
	for _, s := range sharedSections() {
		known[s.name] = s.flags
	}
	for _, sec := range f.sections {
		if _, ok := known[sec]; ok || !slices.Contains(roleNames(), sec) {
			continue
		}
		fs, err := roleFlags(sec)
		if err != nil {
			return err
		}
		known[sec] = fs
	}
	for _, sec := range f.sections {
		fs, ok := known[sec]
		if !ok {
			f.errorf(f.at[sec], "unknown section %q%s (the sections are log, coordination, store, %s)",
				sec, suggest(sec, knownSections()), strings.Join(roleNames(), ", "))
			continue
		}
		for _, en := range f.inOrder(sec) {
			f.checkEntry(fs, en)
		}
	}
	return nil
}

// inOrder returns a section's entries in the file's order.
func (f *configFile) inOrder(sec string) []*configEntry {
	out := make([]*configEntry, 0, len(f.entries[sec]))
	for _, en := range f.entries[sec] {
		out = append(out, en)
	}
	slices.SortFunc(out, func(a, b *configEntry) int { return a.key0.line - b.key0.line })
	return out
}

func knownSections() []string {
	var out []string
	for _, s := range sharedSections() {
		out = append(out, s.name)
	}
	return append(out, roleNames()...)
}

func (f *configFile) checkEntry(fs *flag.FlagSet, en *configEntry) {
	fl := fs.Lookup(en.key)
	if fl == nil || en.key == "config" {
		f.errorf(en.key0, "%s: unknown key %q%s", en.section, en.key, f.elsewhere(en))
		return
	}
	if v, ok := fl.Value.(*secretValue); ok {
		instead := envName(v.name)
		if v.fileFlag != "" {
			instead = v.fileFlag + " (a file holding it) or " + instead
		}
		f.errorf(en.key0, "%s.%s: a secret is not accepted in a config file; give %s", en.section, en.key, instead)
		return
	}
	if hasURLPassword(en.value) {
		instead := "a *-password-file key or the environment"
		if pw := fs.Lookup(en.key + "-password"); pw != nil {
			if v, ok := pw.Value.(*secretValue); ok && v.fileFlag != "" {
				instead = v.fileFlag + " or " + envName(v.name)
			}
		}
		f.errorf(en.val0, "%s.%s: the password in this URL is a secret, not accepted in a config file; "+
			"leave it out of the URL and give it in %s", en.section, en.key, instead)
		return
	}
	// Set on a copy of the role's flags (a probe's, or a shared section's scratch set), so
	// a value is judged by the flag's own parser.
	if err := fs.Set(en.key, en.value); err != nil {
		f.errs = append(f.errs, f.valueError(en, fl, err))
	}
}

// elsewhere says where an unknown key belongs, or what it is close to.
func (f *configFile) elsewhere(en *configEntry) string {
	var in []string
	var near []string
	for _, s := range sharedSections() {
		if s.flags.Lookup(en.key) != nil {
			in = append(in, s.name)
		}
		if s.name == en.section {
			s.flags.VisitAll(func(fl *flag.Flag) { near = append(near, fl.Name) })
		}
	}
	for _, r := range roleNames() {
		fs, err := roleFlags(r)
		if err != nil {
			continue
		}
		if fs.Lookup(en.key) != nil && f.shared[en.key] == "" {
			in = append(in, r)
		}
		if r == en.section {
			fs.VisitAll(func(fl *flag.Flag) {
				if fl.Name != "config" {
					near = append(near, fl.Name)
				}
			})
		}
	}
	in = slices.DeleteFunc(in, func(s string) bool { return s == en.section })
	if len(in) > 0 {
		return fmt.Sprintf(" (it is a key of %s)", strings.Join(in, ", "))
	}
	return suggest(en.key, near)
}

// valueError says why a flag refused a value, with the kind of value it wants.
func (f *configFile) valueError(en *configEntry, fl *flag.Flag, err error) fileError {
	why := ": " + err.Error()
	if k := flagKind(fl); k != "" {
		why = ": want " + k
		if err.Error() != "parse error" { // the flag package's word for any syntax error
			why += " (" + err.Error() + ")"
		}
	}
	return fileError{path: f.path, at: en.val0, msg: fmt.Sprintf("%s.%s: invalid value %q%s", en.section, en.key, en.value, why)}
}

// flagKind describes the values a flag takes ("" for text).
func flagKind(fl *flag.Flag) string {
	g, ok := fl.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case bool:
		return "true or false"
	case time.Duration:
		return "a duration such as 250ms, 10s or 1m30s"
	case int, int64:
		return "an integer"
	case uint, uint64:
		return "a non-negative integer"
	case float64:
		return "a number"
	}
	return ""
}

// hasURLPassword reports whether s is a URL with a password in it.
func hasURLPassword(s string) bool {
	if !strings.Contains(s, "://") {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return false
	}
	_, ok := u.User.Password()
	return ok
}

// suggest returns ` (did you mean "x"?)` for the closest of names, if one is close.
func suggest(s string, names []string) string {
	best, bestD := "", len(s)/3+2
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
