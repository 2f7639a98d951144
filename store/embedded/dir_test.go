package embedded_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-mqtt/switchboard/store/embedded"
)

func TestUnwritableDirectory(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	bitsIgnored := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600) == nil
	if bitsIgnored {
		// Root ignores permission bits: a path under a regular file cannot be written by
		// anyone.
		file := filepath.Join(parent, "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(file, "store")
	}
	s, err := embedded.Open(testContext(t), testConfig(t, dir))
	if err == nil {
		s.Close()
		t.Fatalf("open of unwritable %s succeeded", dir)
	}
	t.Log(err)
	if !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %q does not name the directory", err)
	}
	if !bitsIgnored && (!errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "not writable")) {
		t.Fatalf("error %q does not say the directory is not writable", err)
	}
}

func TestMissingDirectoryIsCreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s := open(t, testConfig(t, dir))
	if s.Dir() != dir {
		t.Fatalf("Dir() = %q, want %q", s.Dir(), dir)
	}
	if _, err := os.Stat(filepath.Join(dir, embedded.FileName)); err != nil {
		t.Fatal(err)
	}
}
