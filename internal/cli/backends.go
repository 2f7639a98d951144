package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/progress"
)

// devBackends are the real servers `backends` and `up` start from Debian's packages.
type devBackends struct {
	ensemble *backends.Ensemble
	redis    *backends.Redis
}

func startDevBackends(ctx context.Context, dir string, prog *progress.Line) (*devBackends, error) {
	// Once, before anything is written: the servers run in directories of their own and
	// would read a relative path from there.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	dir = abs
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	prog.Set("starting a 3-server ZooKeeper ensemble in %s (installing it first if it is missing)", filepath.Join(dir, "zookeeper"))
	e, err := backends.StartEnsemble(sctx, backends.EnsembleConfig{Dir: filepath.Join(dir, "zookeeper"), TickTime: 500 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	prog.Set("starting Redis in %s", filepath.Join(dir, "redis"))
	r, err := backends.StartRedis(sctx, backends.RedisConfig{Dir: filepath.Join(dir, "redis")})
	if err != nil {
		e.Close()
		return nil, err
	}
	return &devBackends{ensemble: e, redis: r}, nil
}

func (b *devBackends) close() {
	b.redis.Stop()
	b.ensemble.Close()
}

func runBackends(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("backends", e)
	var dir string
	fs.StringVar(&dir, "dir", ".switchboard/backends", "where the servers keep their data and logs")
	if err := parse(fs, args); err != nil {
		return err
	}
	prog := startProgress(e, false)
	b, err := startDevBackends(ctx, dir, prog)
	prog.Stop()
	if err != nil {
		return err
	}
	defer b.close()
	fmt.Fprintf(e.stdout, "ZooKeeper ensemble (3 servers) and Redis are running; Ctrl-C stops them.\n\n")
	fmt.Fprintf(e.stdout, "  --zk %s --redis %s\n\n", b.ensemble.ConnectString(), b.redis.Addr)
	fmt.Fprintf(e.stdout, "  export SWITCHBOARD_ZK=%s SWITCHBOARD_REDIS=%s\n", b.ensemble.ConnectString(), b.redis.Addr)
	<-ctx.Done()
	return nil
}
