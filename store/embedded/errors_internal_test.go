package embedded

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/switchboard-mqtt/switchboard/store"
)

func TestFail(t *testing.T) {
	s := &Store{dir: "/data/sb"}
	for _, c := range []struct {
		name   string
		err    error
		is     []error
		naming bool
	}{
		{"enospc", &fs.PathError{Op: "write", Path: "/data/sb/x", Err: syscall.ENOSPC}, []error{store.ErrStoreFull, syscall.ENOSPC}, true},
		// bbolt formats the error of growing its file with %s.
		{"enospc text", fmt.Errorf("file resize error: %s", syscall.ENOSPC), []error{store.ErrStoreFull}, true},
		{"quota", syscall.EDQUOT, []error{store.ErrStoreFull}, true},
		{"closed db", berrors.ErrDatabaseNotOpen, []error{ErrClosed, store.ErrUnavailable}, false},
		{"closed", errClosed, []error{ErrClosed, store.ErrUnavailable}, false},
		{"cancelled", context.Canceled, []error{context.Canceled}, false},
		{"other", errCorrupt, []error{errCorrupt}, true},
	} {
		err := s.fail("append", c.err)
		for _, target := range c.is {
			if !errors.Is(err, target) {
				t.Errorf("%s: %v does not wrap %v", c.name, err, target)
			}
		}
		if !strings.HasPrefix(err.Error(), "append: ") {
			t.Errorf("%s: %q does not start with the operation", c.name, err)
		}
		if c.naming != strings.Contains(err.Error(), s.dir) {
			t.Errorf("%s: %q names the directory: %v, want %v", c.name, err, !c.naming, c.naming)
		}
	}
	if s.fail("x", nil) != nil {
		t.Error("fail(nil) is not nil")
	}
	if errors.Is(s.fail("x", syscall.EIO), store.ErrStoreFull) {
		t.Error("EIO reported as a full store")
	}
}
