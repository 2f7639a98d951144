package embedded_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/store"
)

// TestReadReceiptsAfterTheLastCursor: a cursor at the largest number reads nothing (it
// must not wrap round to the start of the log).
func TestReadReceiptsAfterTheLastCursor(t *testing.T) {
	st := open(t, testConfig(t, t.TempDir()))
	ctx := testenv.Context(t, 10*time.Second)
	if err := st.Finish(ctx, store.Receipt{Client: "a", ID: "1", Status: store.ReceiptDelivered}); err != nil {
		t.Fatal(err)
	}
	got, err := st.ReadReceipts(ctx, strconv.FormatUint(^uint64(0), 10), 10, 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("read after the largest cursor: %v, %v; want nothing", got, err)
	}
}
