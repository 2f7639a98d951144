package embedded_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/embedded"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// TestDiskFull fills a small tmpfs. The append that does not fit gets an Err that wraps
// store.ErrStoreFull naming the directory (the call itself succeeds); the store then
// still reads, removes and recognises duplicates, refuses new messages until space is
// freed, and accepts them again after. It needs to mount, so it runs as root only.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	cfg := testConfig(t, dir)
	cfg.ReserveBytes = 128 << 10
	s := open(t, cfg)
	ctx := testContext(t)
	p := storetest.NewPresence("c1", "n1", 1)
	if _, err := s.Connect(ctx, p); err != nil {
		t.Fatal(err)
	}
	appendOne := func(m store.Message) (store.AppendResult, error) {
		t.Helper()
		res, err := s.Append(ctx, 1000, []store.Message{m})
		if err != nil {
			t.Fatalf("append %s: the call failed: %v", m.ID, err)
		}
		return res[0], res[0].Err
	}
	var sent []store.Message
	var err error
	for i := range 100 {
		m := storetest.NewMessage("c1", fmt.Sprint("m", i))
		m.Payload = make([]byte, 64<<10)
		if _, err = appendOne(m); err != nil {
			break
		}
		sent = append(sent, m)
	}
	if !errors.Is(err, store.ErrStoreFull) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("append to a full disk after %d appends: %v; want ErrStoreFull naming %s", len(sent), err, dir)
	}
	t.Logf("after %d appends: %v", len(sent), err)
	if _, err := os.Stat(filepath.Join(dir, embedded.ReserveFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the reserve was not released: %v", err)
	}

	if d, err := s.Depth(ctx, "c1"); err != nil || d != len(sent) {
		t.Fatalf("depth after the refused append = %d, %v; want %d", d, err, len(sent))
	}
	msgs, err := s.Peek(ctx, "c1", 0, 2)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("peek on a full disk = %d messages, %v", len(msgs), err)
	}
	if err := s.Remove(ctx, store.Removal{Client: "c1", IDs: []string{msgs[0].ID, msgs[1].ID}}); err != nil {
		t.Fatalf("remove on a full disk: %v", err)
	}
	if d, err := s.Depth(ctx, "c1"); err != nil || d != len(sent)-2 {
		t.Fatalf("depth after remove on a full disk = %d, %v; want %d", d, err, len(sent)-2)
	}
	if res, err := appendOne(sent[5]); err != nil || !res.Duplicate {
		t.Fatalf("duplicate append on a full disk = %+v, %v; want Duplicate", res, err)
	}
	if _, err := appendOne(storetest.NewMessage("c1", "small")); !errors.Is(err, store.ErrStoreFull) {
		t.Fatalf("append on a full disk: %v, want ErrStoreFull", err)
	}

	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT, "size=4m"); err != nil {
		t.Fatalf("grow the tmpfs: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err := appendOne(storetest.NewMessage("c1", "small"))
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrStoreFull) || time.Now().After(deadline) {
			t.Fatalf("append after space was freed: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, embedded.ReserveFileName)); err != nil {
		t.Fatalf("the reserve was not taken back: %v", err)
	}
}
