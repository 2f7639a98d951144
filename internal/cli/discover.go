package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The discovery file lets the operator commands find the cluster `switchboard up` runs in
// the same directory: up writes <data-dir>/cluster.json once everything has started and
// removes it on exit; status, quarantine and release read the coordination endpoint from
// it when neither --zk nor --etcd is given, send and mailbox the API when --api is not.
// A file whose process is gone (up was killed) is stale and ignored, with a note.

const (
	defaultUpDir  = ".switchboard" // up's default --data-dir, where the commands look
	discoveryName = "cluster.json"
	lockName      = "up.lock" // in the data dir while up runs, and after (flock is the lock)
)

// discovery is the file's content. It holds no secret: up's development cluster has none,
// and a --zk-auth up was given is the operator's to give again (SWITCHBOARD_ZK_AUTH).
type discovery struct {
	Version   int       `json:"version"` // 1
	PID       int       `json:"pid"`     // the up process; the file is stale when it is gone
	StartedAt time.Time `json:"started_at"`
	DataDir   string    `json:"data_dir"` // absolute
	API       string    `json:"api"`      // the router's base URL
	Etcd      string    `json:"etcd,omitempty"`
	ZK        string    `json:"zk,omitempty"`
	Root      string    `json:"root"` // --coord-root: the znode or etcd key prefix
	Nodes     []upNode  `json:"nodes"`
}

// upNode is one of up's nodes, as the tour shows it.
type upNode struct {
	ID    string `json:"id"`
	MQTT  string `json:"mqtt"`
	WS    string `json:"ws,omitempty"` // MQTT over WebSocket, with --ws-port
	Admin string `json:"admin"`
}

// discovery describes the running cluster; api is the bound API address.
func (u *upCluster) discovery(o upOptions, api string) discovery {
	d := discovery{Version: 1, PID: os.Getpid(), StartedAt: time.Now().UTC().Truncate(time.Second),
		API: "http://" + dialable(api), Root: o.co.root}
	d.DataDir, _ = filepath.Abs(o.dataDir)
	switch {
	case u.etcd != nil:
		d.Etcd = u.etcd.Endpoint()
	case o.co.etcd != "":
		d.Etcd = o.co.etcd
	default:
		d.ZK = o.co.servers
	}
	for _, n := range u.nodes {
		m := n.Member()
		d.Nodes = append(d.Nodes, upNode{ID: m.ID, MQTT: m.MQTTAddr, WS: n.WebSocketAddrs()["ws"], Admin: m.AdminAddr})
	}
	return d
}

// dialable turns a bound address on every interface (":8080", "[::]:8080") into one a
// client on this machine can dial.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// writeDiscovery writes d into dir (atomically: a reader never sees half a file) and
// returns the function that removes it.
func writeDiscovery(dir string, d discovery) (remove func(), err error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, discoveryName)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("discovery file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("discovery file: %w", err)
	}
	return func() { _ = os.Remove(path) }, nil
}

// localCluster reads ./.switchboard/cluster.json. It returns nil when there is none, or
// when it is stale (its up is gone), after saying so on stderr.
func localCluster(e env) (*discovery, error) {
	path := filepath.Join(defaultUpDir, discoveryName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(defaultUpDir, lockName)); err == nil {
			fmt.Fprintf(e.stderr, "note: ./%s holds the data of a `switchboard up` that is not running: "+
				"start it again here, or name a cluster\n", defaultUpDir)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("local cluster: %w", err)
	}
	var d discovery
	if err := json.Unmarshal(b, &d); err != nil || d.Version != 1 {
		fmt.Fprintf(e.stderr, "note: ignoring ./%s: not a discovery file this version of switchboard reads\n", path)
		return nil, nil
	}
	if !processAlive(d.PID) {
		fmt.Fprintf(e.stderr, "note: ignoring ./%s: the `switchboard up` that wrote it (pid %d) is not running\n", path, d.PID)
		return nil, nil
	}
	return &d, nil
}

// processAlive reports whether a process with this id exists (signal 0 checks without
// sending anything; EPERM means it exists under another user).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (d *discovery) announce(e env) {
	fmt.Fprintf(e.stderr, "using the local cluster of `switchboard up` in ./%s (pid %d)\n", defaultUpDir, d.PID)
}

// discover fills the coordination flags from the local cluster when neither --zk nor
// --etcd was given (on the command line or in the environment).
func (o *coordOptions) discover(fs *flag.FlagSet, e env) error {
	if flagSet(fs, "zk") || flagSet(fs, "etcd") {
		return nil
	}
	d, err := localCluster(e)
	if err != nil || d == nil {
		return err
	}
	o.etcd, o.servers = d.Etcd, d.ZK
	if !flagSet(fs, "coord-root") && !flagSet(fs, "zk-root") && d.Root != "" {
		o.root = d.Root
	}
	d.announce(e)
	return nil
}

// discoverAPI sets *api to the local cluster's router when --api was not given, and makes a
// given one a base URL.
func discoverAPI(fs *flag.FlagSet, e env, api *string) error {
	if flagSet(fs, "api") {
		// up's --api is a listen address (host:port): the same value names the router here.
		if !strings.Contains(*api, "://") {
			*api = "http://" + *api
		}
		*api = strings.TrimSuffix(*api, "/")
		return nil
	}
	d, err := localCluster(e)
	if err != nil || d == nil {
		return err
	}
	*api = d.API
	d.announce(e)
	return nil
}
