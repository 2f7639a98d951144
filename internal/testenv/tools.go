package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Tool returns the path of an external program a test runs against Switchboard's
// deployment files (haproxy, promtool, prometheus, systemd-analyze), installing the Debian
// packages of internal/backends/install.sh when it is missing. A test never skips for a
// missing tool: it fails if the install does not provide it.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p := lookTool(name); p != "" {
		return p
	}
	cmd := exec.Command("bash", filepath.Join(ModuleRoot(t), "internal", "backends", "install.sh"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s is missing and internal/backends/install.sh failed: %v\n%s", name, err, out)
	}
	p := lookTool(name)
	if p == "" {
		t.Fatalf("%s is still missing after internal/backends/install.sh", name)
	}
	return p
}

// lookTool finds name on PATH or in the system directories a non-root PATH may lack.
func lookTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}
