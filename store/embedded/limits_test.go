package embedded_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/storetest"
)

// TestOversizedIDRefused: bbolt keys hold at most 32 KiB, so a client id and message id
// longer than that are refused with an error, while the appends committed beside it are
// not disturbed.
func TestOversizedIDRefused(t *testing.T) {
	s := open(t, testConfig(t, t.TempDir()))
	ctx := testContext(t)
	long := strings.Repeat("x", 40<<10)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			to := "c1"
			if i == 3 {
				to = long
			}
			_, errs[i] = s.Append(ctx, 100, []store.Message{storetest.NewMessage(to, "m"+string(rune('a'+i)))})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if (i == 3) != (err != nil) {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if d, err := s.Depth(ctx, "c1"); err != nil || d != 7 {
		t.Fatalf("depth of c1 = %d, %v; want 7", d, err)
	}
	if _, err := s.Connect(ctx, storetest.NewPresence(long, "n1", 1)); err == nil {
		t.Fatal("connect of an oversized client id succeeded")
	}
}
