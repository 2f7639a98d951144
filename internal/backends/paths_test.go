package backends

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEnsembleConfigFromARelativeDir: from a relative Dir, every path a ZooKeeper server is
// given — zoo.cfg on its command line, dataDir in zoo.cfg, its working directory and log —
// is absolute and names the files written, since the server runs in a directory of its
// own and would otherwise look for them under it. No server is started.
func TestEnsembleConfigFromARelativeDir(t *testing.T) {
	base := t.TempDir()
	t.Chdir(base)
	e, err := newEnsemble(EnsembleConfig{Dir: ".switchboard/backends/zookeeper", Size: 3,
		TickTime: 250 * time.Millisecond, HeapMB: 64}, []int{1, 2, 3, 4, 5, 6, 7, 8, 9})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.servers) != 3 {
		t.Fatalf("%d servers, want 3", len(e.servers))
	}
	for _, s := range e.servers {
		want := filepath.Join(base, ".switchboard/backends/zookeeper", "zk"+string(rune('0'+s.ID)))
		if s.proc.dir != want {
			t.Errorf("zookeeper %d runs in %q, want %q", s.ID, s.proc.dir, want)
		}
		if !filepath.IsAbs(s.proc.logPath) {
			t.Errorf("zookeeper %d logs to relative %q", s.ID, s.proc.logPath)
		}
		cfgPath := s.proc.argv[len(s.proc.argv)-1]
		if cfgPath != filepath.Join(want, "zoo.cfg") {
			t.Errorf("zookeeper %d is given %q, want %q", s.ID, cfgPath, filepath.Join(want, "zoo.cfg"))
		}
		conf, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		var dataDir string
		for line := range strings.Lines(string(conf)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "dataDir="); ok {
				dataDir = v
			}
		}
		if dataDir != filepath.Join(want, "data") {
			t.Errorf("zookeeper %d: dataDir=%q, want %q", s.ID, dataDir, filepath.Join(want, "data"))
		}
		if _, err := os.Stat(filepath.Join(dataDir, "myid")); err != nil {
			t.Errorf("zookeeper %d: %v", s.ID, err)
		}
	}
}

// TestRedisCommandLineFromARelativeDir: from a relative Dir, redis-server's --dir, its
// working directory and log are absolute (it runs in Dir and would resolve a relative
// --dir under it). No server is started.
func TestRedisCommandLineFromARelativeDir(t *testing.T) {
	base := t.TempDir()
	t.Chdir(base)
	r, err := newRedis(RedisConfig{Dir: ".switchboard/backends/redis", Port: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(base, ".switchboard/backends/redis")
	i := slices.Index(r.proc.argv, "--dir")
	if i < 0 || i+1 >= len(r.proc.argv) || r.proc.argv[i+1] != want {
		t.Errorf("redis-server %q: want --dir %s", r.proc.argv, want)
	}
	if r.proc.dir != want || r.proc.logPath != filepath.Join(want, "redis.log") {
		t.Errorf("redis runs in %q logging to %q, want %q", r.proc.dir, r.proc.logPath, want)
	}
	if fi, err := os.Stat(want); err != nil || !fi.IsDir() {
		t.Errorf("Dir not created: %v", err)
	}
}

// TestStartFromARelativeDir starts a real ZooKeeper ensemble (of one, to be quick) and Redis server from a
// relative Dir, as `switchboard backends` does with its default --dir; it is skipped where
// the Debian packages are not installed, rather than installing them.
func TestStartFromARelativeDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	if m := Missing(); len(m) > 0 {
		t.Skipf("not installed: %s", strings.Join(m, ", "))
	}
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := StartEnsemble(ctx, EnsembleConfig{Dir: "rel/zookeeper", Size: 1, HeapMB: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r, err := StartRedis(ctx, RedisConfig{Dir: "rel/redis"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
}
