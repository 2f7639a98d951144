package watcher

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/store"
)

// PresenceClearer clears the presence entries a dead node left behind (store.Store
// provides it). Its methods may be called concurrently.
type PresenceClearer interface {
	// ClearNode clears the presence of node's clients at epoch, and forgets the pair.
	ClearNode(ctx context.Context, node string, epoch int64) (int, error)
	// RecordedEpochs lists the (node, epoch) pairs presence may still name, after after.
	RecordedEpochs(ctx context.Context, after store.NodeEpoch, max int) ([]store.NodeEpoch, error)
}

const (
	// sweepPage is how many recorded (node, epoch) pairs a sweep reads at a time.
	sweepPage = 100
	// sweepEvery is how often the leader sweeps again while it leads, for a node that
	// joined and left between two listings of the live set (its leave is no event).
	sweepEvery = 10 * time.Minute
	// clearTimeout bounds one ClearNode.
	clearTimeout = 30 * time.Second
)

// ReaperCoordinator is what the reaper needs of the coordinator: its election, a fresh
// listing of the live set for the sweep (the watcher's view may lag), and the member watch
// the live set of a started reaper follows. coord.Coordinator provides it; its methods may
// be called concurrently.
type ReaperCoordinator interface {
	coord.Campaigner
	Members(ctx context.Context) ([]coord.Member, error)
	MemberWatch
}

var _ ReaperCoordinator = coord.Coordinator(nil)

// RunReaper keeps the store's presence table in step with the live set: among every process
// that runs it, one is elected (election "reaper"), and that one clears the presence of each
// node that leaves the live set, for the epoch that left. Routers never route by a stale
// entry anyway (they check the node's epoch against the live set); the reaper keeps the
// table true for everyone who reads it. It returns when ctx ends.
//
// A node can also leave while no reaper leads (every candidate down, or between one
// leader's end and the next one's start): no one sees that leave as an event. So a leader
// that starts sweeps first: it reads every (node, epoch) pair presence was recorded under,
// in pages of sweepPage, and clears those that have left the live set. It sweeps again
// every sweepEvery while it leads.
func RunReaper(ctx context.Context, c ReaperCoordinator, w *Watcher, st PresenceClearer, candidate string, log *slog.Logger) {
	log = log.With("component", "reaper")
	coord.Lead(ctx, c, "reaper", candidate, log, func(ctx context.Context, lead coord.Leadership) {
		log.Info("leading the reaper election", "candidate", candidate)
		reap(ctx, c, lead, w, st, log)
	})
}

// ReaperConfig configures a reaper role.
type ReaperConfig struct {
	// Candidate is the reaper's name in the "reaper" election (a router's or monitor's id).
	Candidate string
}

// ReaperDeps are what a reaper role is given. It closes neither.
type ReaperDeps struct {
	// Coord is the reaper's election and the member watch a Watcher of its own follows.
	Coord ReaperCoordinator
	// Store clears the presence of the nodes that leave.
	Store  PresenceClearer
	Logger *slog.Logger
}

// Reaper is a running reaper role: a candidate in the reaper election with a live set of
// its own (see RunReaper), owned by whoever started it. Close stops it, and after Close it
// calls neither the coordinator nor the store, so the owner may close them next.
type Reaper struct {
	w      *Watcher
	cancel context.CancelFunc
	done   chan struct{}
}

// StartReaper starts a reaper role: it follows the live set (returning once the first set
// has arrived, or when ctx ends first) and runs RunReaper on a goroutine of its own, which
// campaigns in the background and reaps while it leads. ctx bounds the start only.
func StartReaper(ctx context.Context, cfg ReaperConfig, deps ReaperDeps) (*Reaper, error) {
	if cfg.Candidate == "" {
		return nil, errors.New("reaper: Candidate is empty")
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	w, err := Start(ctx, deps.Coord, log)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &Reaper{w: w, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		RunReaper(rctx, deps.Coord, w, deps.Store, cfg.Candidate, log)
	}()
	return r, nil
}

// Done is closed once the reaper has stopped.
func (r *Reaper) Done() <-chan struct{} { return r.done }

// Close stops the reaper (resigning if it leads) and its live set, and waits until they
// have. Idempotent.
func (r *Reaper) Close() {
	r.cancel()
	<-r.done
	r.w.Close()
}

func reap(ctx context.Context, c ReaperCoordinator, lead coord.Leadership, w *Watcher, st PresenceClearer, log *slog.Logger) {
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
	// Subscribed first, so that a leave after the sweep's reading of the live set is an
	// event, and one before it is the sweep's.
	sweep(lctx, c, st, log)
	next := time.Now().Add(sweepEvery)
	for {
		nctx, ncancel := context.WithDeadline(lctx, next)
		ev, ok := sub.Next(nctx)
		ncancel()
		if !ok {
			if lctx.Err() != nil {
				return
			}
			if time.Now().Before(next) {
				// Not the sweep's deadline: the subscription ended (the watcher closed).
				// Without it there are no leave events to wait for, so stop rather than
				// sweep in a loop.
				log.Warn("reaper: the watcher's subscription ended; stopping")
				return
			}
			sweep(lctx, c, st, log)
			next = time.Now().Add(sweepEvery)
			continue
		}
		if ev.Kind != Leave {
			continue
		}
		for attempt := 0; attempt < 5 && lctx.Err() == nil; attempt++ {
			cctx, ccancel := context.WithTimeout(lctx, clearTimeout)
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

// sweep clears the presence of every recorded (node, epoch) pair that has left the live
// set. A node records a pair (by connecting a client under it) only once it is registered
// under that epoch, so a pair read from the store before a fresh listing of the live set
// (the coordinator's Members, which syncs first) has left it when that listing does not
// show the node under that epoch; the watcher's view could lag behind the store. A node
// listed under an older epoch than the pair's is such a lag too, and left alone. A
// failure ends the sweep; the next one (or the next leader's) starts over.
func sweep(ctx context.Context, c ReaperCoordinator, st PresenceClearer, log *slog.Logger) {
	start := time.Now()
	var after store.NodeEpoch
	seen, cleared, clients := 0, 0, 0
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, clearTimeout)
		page, err := st.RecordedEpochs(pctx, after, sweepPage)
		var live []coord.Member
		if err == nil {
			live, err = c.Members(pctx)
		}
		cancel()
		if err != nil {
			log.Warn("sweep: reading recorded epochs or the live set failed; the next sweep starts over", "error", err)
			return
		}
		epochs := make(map[string]int64, len(live))
		for _, m := range live {
			epochs[m.ID] = m.Epoch
		}
		for _, ne := range page {
			seen++
			if e, ok := epochs[ne.Node]; ok && e <= ne.Epoch {
				continue // live under it (or a listing behind the store)
			}
			cctx, ccancel := context.WithTimeout(ctx, clearTimeout)
			n, err := st.ClearNode(cctx, ne.Node, ne.Epoch)
			ccancel()
			if err != nil {
				log.Warn("sweep: clear presence of a node that left failed; the next sweep retries",
					"node", ne.Node, "epoch", ne.Epoch, "error", err)
				continue
			}
			cleared++
			clients += n
			log.Info("sweep: cleared presence of a node that left while no reaper saw it",
				"node", ne.Node, "epoch", ne.Epoch, "clients", n)
		}
		if len(page) < sweepPage {
			break
		}
		after = page[len(page)-1]
	}
	log.Info("swept recorded epochs", "pairs", seen, "cleared", cleared, "clients", clients,
		"took", time.Since(start).Round(time.Millisecond))
}
