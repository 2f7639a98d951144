package watcher

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// PresenceClearer clears the presence entries a dead node left behind.
type PresenceClearer interface {
	ClearNode(ctx context.Context, node string, epoch int64) (int, error)
}

// RunReaper is the seed's watcher updating the Redis table: among every process that runs
// it, one is elected (election "reaper"), and that one clears the presence of each node that
// leaves the live set, for the epoch that left. Routers never route by a stale entry anyway
// (they check the node's epoch against the live set); the reaper keeps the table true for
// everyone who reads it. It returns when ctx ends.
func RunReaper(ctx context.Context, c coord.Coordinator, w *Watcher, st PresenceClearer, candidate string, log *slog.Logger) {
	log = log.With("component", "reaper")
	for ctx.Err() == nil {
		lead, err := c.Campaign(ctx, "reaper", candidate)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("campaign failed; retrying", "error", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		log.Info("leading the reaper election", "candidate", candidate)
		reap(ctx, lead, w, st, log)
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = lead.Resign(rctx)
		cancel()
	}
}

func reap(ctx context.Context, lead coord.Leadership, w *Watcher, st PresenceClearer, log *slog.Logger) {
	sub := w.Subscribe()
	defer sub.Close()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-lead.Done():
			cancel()
		case <-lctx.Done():
		}
	}()
	for {
		ev, ok := sub.Next(lctx)
		if !ok {
			return
		}
		if ev.Kind != Leave {
			continue
		}
		for attempt := 0; attempt < 5 && lctx.Err() == nil; attempt++ {
			cctx, ccancel := context.WithTimeout(lctx, 30*time.Second)
			n, err := st.ClearNode(cctx, ev.Member.ID, ev.Member.Epoch)
			ccancel()
			if err == nil {
				log.Info("cleared presence of a node that left", "node", ev.Member.ID, "epoch", ev.Member.Epoch, "clients", n)
				break
			}
			if errors.Is(err, context.Canceled) {
				return
			}
			log.Warn("clear presence failed; retrying", "node", ev.Member.ID, "error", err)
			select {
			case <-time.After(time.Second):
			case <-lctx.Done():
				return
			}
		}
	}
}
