package coord

import (
	"context"
	"log/slog"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/notify"
)

// Campaigner is what Lead needs of a coordinator.
type Campaigner interface {
	// Campaign blocks until candidate leads the named election (or ctx is done).
	Campaign(ctx context.Context, election, candidate string) (Leadership, error)
}

// Lead is every elected role's loop until ctx ends: campaign (again a second after a failure);
// once elected, call lead, which must return when the leadership's Done is closed or ctx ends;
// resign, so the next candidate need not wait for this one's session to end; and again.
func Lead(ctx context.Context, c Campaigner, election, candidate string, log *slog.Logger, lead func(ctx context.Context, l Leadership)) {
	for ctx.Err() == nil {
		l, err := c.Campaign(ctx, election, candidate)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("campaign failed; retrying", "election", election, "error", err)
				notify.Sleep(ctx, time.Second, nil)
			}
			continue
		}
		lead(ctx, l)
		// Resigning must not depend on ctx, which has often ended by now.
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = l.Resign(rctx)
		cancel()
	}
}
