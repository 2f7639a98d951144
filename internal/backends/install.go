// Package backends starts the real servers Switchboard runs against — a ZooKeeper ensemble, a
// Redis server, a Redis Cluster, a Redis primary with replicas behind Sentinel — from Debian's
// packages, on free loopback ports, and stops them again. The integration tests, `switchboard
// backends` and scripts/backends.sh all use it, so a test never depends on a server somebody
// started by hand.
package backends

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

//go:embed install.sh
var installScript string

// ZooKeeperJar is where Debian's zookeeper package puts the server.
const ZooKeeperJar = "/usr/share/java/zookeeper.jar"

// Missing lists the programs and files the backends need that this machine lacks.
func Missing() []string {
	var missing []string
	if _, err := os.Stat(ZooKeeperJar); err != nil {
		missing = append(missing, ZooKeeperJar)
	}
	for _, bin := range []string{"java", "redis-server", "redis-sentinel", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	return missing
}

var installMu sync.Mutex

// EnsureInstalled installs ZooKeeper and Redis from Debian's packages when they are missing,
// by running the same script as scripts/install-deps.sh. It needs root or sudo.
func EnsureInstalled(ctx context.Context) error {
	installMu.Lock()
	defer installMu.Unlock()
	missing := Missing()
	if len(missing) == 0 {
		return nil
	}
	cmd := exec.CommandContext(ctx, "bash", "-c", installScript)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("install %s (scripts/install-deps.sh): %w: %s",
			strings.Join(missing, ", "), err, strings.TrimSpace(string(out)))
	}
	if still := Missing(); len(still) > 0 {
		return fmt.Errorf("still missing after install: %s", strings.Join(still, ", "))
	}
	return nil
}
