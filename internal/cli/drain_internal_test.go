package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// stalledCoord answers Members only when the caller gives up, as a coordination service
// that stalls (a frozen etcd, a ZooKeeper without quorum) does.
type stalledCoord struct{ coord.Coordinator }

func (stalledCoord) Members(ctx context.Context) ([]coord.Member, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestWaitDrainedDoesNotTakeSilenceForSuccess: `quarantine --wait` whose wait runs out
// before the live set answers fails, the mark standing; it used to say the node was out
// of service, exit 0, while it was still live and serving.
func TestWaitDrainedDoesNotTakeSilenceForSuccess(t *testing.T) {
	var out, errOut bytes.Buffer
	err := waitDrained(context.Background(), env{stdout: &out, stderr: &errOut}, stalledCoord{}, "node-a", "127.0.0.1:1", 100*time.Millisecond)
	if err == nil || strings.Contains(out.String(), "out of service") {
		t.Fatalf("wait with a stalled live set: %v, printed %q; want an error and no success line", err, out.String())
	}
	if !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("error %q does not say the live set did not answer", err)
	}
}
