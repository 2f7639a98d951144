package deptest

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/switchboard-mqtt/switchboard/"

// Groups of packages the rules deny. A pattern ending in "/..." matches the path and every
// path under it.
var (
	// mochiBroker is the broker itself. Its packet codec (packets, and mempool under it) is
	// not: the MQTT client speaks it.
	mochiBroker = []string{
		"github.com/mochi-mqtt/server/v2",
		"github.com/mochi-mqtt/server/v2/hooks/...",
		"github.com/mochi-mqtt/server/v2/listeners/...",
		"github.com/mochi-mqtt/server/v2/system/...",
	}
	mochiAll = []string{"github.com/mochi-mqtt/..."}

	// coordBackends and storeBackends are the adapters and the client libraries behind them;
	// only the CLI chooses one and wires it in.
	coordBackends = []string{
		module + "coord/zkcoord/...", module + "coord/etcdcoord/...",
		"github.com/go-zookeeper/...", "go.etcd.io/etcd/...",
	}
	storeBackends = []string{
		module + "store/redisstore/...", module + "store/embedded/...",
		"github.com/redis/...", "go.etcd.io/bbolt/...",
	}

	// roles are the packages that make up a running process; none links another.
	roleNode    = module + "node/..."
	roleRouter  = module + "router/..."
	roleMonitor = module + "monitor/..."
	bench       = module + "bench/..."
	cli         = module + "internal/cli/..."
)

func group(gs ...[]string) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g...)
	}
	return out
}

// allowed takes packages out of a rule's deny list, by the rule's package.
var allowed = map[string][]string{"internal/etcdembed": {module + "internal/zapslog"}}

// rules: for each package (relative to the module), what it must not link and why.
var rules = []struct {
	pkg  string
	deny []string
	why  string
}{
	// Leaves: the shared vocabulary links nothing of ours.
	{"inbox", []string{module + "..."}, "the shared topic and client-id rules are a leaf"},
	{"healthz", []string{module + "..."}, "the /healthz document is a leaf that node and its readers share"},
	{"wire", []string{module + "..."}, "the internal protocol is a leaf"},
	{"store", []string{module + "..."}, "the store interface is a leaf"},
	{"zkstat", []string{module + "..."}, "ZooKeeper's four-letter stats are a leaf"},
	{"internal/mqttclient", group([]string{module + "..."}, mochiBroker), "the MQTT client is a leaf on mochi's codec, not its broker"},

	// coord is the membership layer: it knows no store, no role, no backend.
	{"coord", group([]string{module + "store/...", roleNode, roleRouter, roleMonitor, module + "watcher/...", module + "lease/..."}, coordBackends, storeBackends, mochiAll),
		"coord is below every role and knows no backend"},
	{"coord/memcoord", group(coordBackends, storeBackends, mochiAll, []string{module + "store/..."}), "the in-memory coordinator needs no server"},
	{"coord/zkcoord", group([]string{module + "coord/etcdcoord/...", "go.etcd.io/etcd/...", module + "store/..."}, storeBackends, mochiAll), "a coordination backend is alone with its library"},
	{"coord/etcdcoord", group([]string{module + "coord/zkcoord/...", "github.com/go-zookeeper/...", module + "store/...", "github.com/redis/...", "go.etcd.io/etcd/server/...", "go.etcd.io/bbolt/...", module + "internal/etcdembed/..."}, mochiAll), "a coordination backend is alone with its client library (etcd's server is internal/etcdembed's)"},
	{"internal/etcdembed", []string{module + "..."}, "the embedded etcd member is a leaf (its logs go through internal/zapslog)"},
	{"store/redisstore", group([]string{module + "coord/..."}, coordBackends, []string{module + "store/embedded/...", "go.etcd.io/bbolt/..."}, mochiAll), "a store backend is alone with its library"},
	{"store/embedded", group([]string{module + "coord/..."}, coordBackends, []string{module + "store/redisstore/...", "github.com/redis/..."}, mochiAll), "a store backend is alone with its library"},

	// The shared layers between coord/store and the roles.
	{"watcher", group([]string{roleNode, roleRouter, roleMonitor}, coordBackends, storeBackends, mochiAll), "the live set is fed by a coordinator interface"},
	{"lease", group([]string{roleNode, roleRouter, roleMonitor}, coordBackends, storeBackends, mochiAll), "the lease rules serve both router and node"},
	{"auth", group([]string{roleNode, roleRouter, roleMonitor}, coordBackends, storeBackends, mochiAll), "authentication knows nothing of the broker it guards"},

	// Roles: each takes its dependencies as interfaces and links no other role.
	{"node", group([]string{roleRouter, roleMonitor, bench, cli}, coordBackends, storeBackends), "a node is given its coordinator and store"},
	{"router", group([]string{roleNode, roleMonitor, bench, cli}, coordBackends, storeBackends, mochiAll), "a router speaks HTTP and wire, never MQTT"},
	{"monitor", group([]string{roleNode, roleRouter, bench, cli}, coordBackends, storeBackends, mochiBroker), "the monitor probes nodes as a client; it must not carry the broker"},
	{"monitor", []string{module + "store/...", module + "watcher/..."}, "the monitor follows the live set through its coordinator and needs no store"},
	{"bench", group([]string{roleNode, roleRouter, roleMonitor, cli, module + "coord/...", module + "store/..."}, coordBackends, storeBackends, mochiBroker), "the load generator is an outside client"},
}

func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	pkgs := make([]string, len(rules))
	for i, r := range rules {
		pkgs[i] = "./" + r.pkg
	}
	deps := listDeps(t, pkgs)
	for _, r := range rules {
		got, ok := deps[module+r.pkg]
		if !ok {
			t.Errorf("go list did not report %s", r.pkg)
			continue
		}
		for _, d := range got {
			for _, pat := range r.deny {
				if matches(d, pat) && d != module+r.pkg && !slices.Contains(allowed[r.pkg], d) {
					t.Errorf("%s links %s (denied by %s): %s", r.pkg, d, pat, r.why)
				}
			}
		}
	}
}

// listDeps runs go list once for every package and returns each one's transitive
// non-test dependencies.
func listDeps(t *testing.T, pkgs []string) map[string][]string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list dependencies with: %v", err)
	}
	args := append([]string{"list", "-f", "{{.ImportPath}}{{range .Deps}} {{.}}{{end}}"}, pkgs...)
	cmd := exec.Command(goBin, args...)
	cmd.Dir = "../.." // the module root
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			deps[f[0]] = f[1:]
		}
	}
	return deps
}

func matches(path, pattern string) bool {
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == p || strings.HasPrefix(path, p+"/")
	}
	return path == pattern
}

// TestMatches pins the pattern rule the dependency rules rely on.
func TestMatches(t *testing.T) {
	for _, c := range []struct {
		path, pattern string
		want          bool
	}{
		{"github.com/mochi-mqtt/server/v2", "github.com/mochi-mqtt/server/v2", true},
		{"github.com/mochi-mqtt/server/v2/packets", "github.com/mochi-mqtt/server/v2", false},
		{"github.com/mochi-mqtt/server/v2/hooks/storage", "github.com/mochi-mqtt/server/v2/hooks/...", true},
		{"github.com/mochi-mqtt/server/v2/hooksx", "github.com/mochi-mqtt/server/v2/hooks/...", false},
		{module + "store", module + "store/...", true},
	} {
		if got := matches(c.path, c.pattern); got != c.want {
			t.Errorf("matches(%q, %q) = %v, want %v", c.path, c.pattern, got, c.want)
		}
	}
}
