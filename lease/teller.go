package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// Members is the live set as a Teller needs it (watcher.Watcher provides it).
type Members interface {
	// Lookup returns node's member data if it is live (under any epoch) and, read from the
	// same set, the highest epoch among the live members. Epochs are the coordinator's
	// transaction ids, so an epoch at or below that maximum which is not in the set has
	// left it: the set was read after that epoch was created.
	Lookup(node string) (m coord.Member, ok bool, maxEpoch int64)
	// Members returns every live member.
	Members() []coord.Member
	// Changed returns a channel closed at the next change of the live set.
	Changed() <-chan struct{}
}

// epochState is what the live set says of one node's epoch.
type epochState int

const (
	epochLive    epochState = iota // the node is live under it
	epochGone                      // it has left the live set
	epochUnknown                   // newer than anything the set has shown yet
)

func (t *Teller) epochState(node string, epoch int64) (coord.Member, epochState) {
	m, ok, maxEpoch := t.members.Lookup(node)
	switch {
	case ok && m.Epoch == epoch:
		return m, epochLive
	case ok && m.Epoch > epoch:
		return m, epochGone
	case ok && m.Epoch < epoch:
		// The node registered again and the set has not shown it yet; its older epoch
		// proves nothing about the newer one.
		return m, epochUnknown
	case epoch <= maxEpoch:
		return m, epochGone
	}
	return m, epochUnknown
}

// Mailboxes is the part of the store a Teller uses.
type Mailboxes interface {
	Append(ctx context.Context, limit int, msgs []store.Message) ([]store.AppendResult, error)
	Notify(ctx context.Context, node string, ns ...store.Notice) error
}

// Dialer opens wire connections to nodes (wire.Pool provides it).
type Dialer interface {
	Get(ctx context.Context, addr string) (*wire.Conn, error)
}

// TellerConfig configures a Teller.
type TellerConfig struct {
	// Self is the node the Teller runs on ("" on a router). Facts about clients connected
	// to Self are handed to Local instead of being sent over the network.
	Self string
	// Local acts on notices for Self's own clients (nil on a router).
	Local func(store.Notice)
	// MailboxLimit caps each mailbox (store.Append's limit).
	MailboxLimit int
	// DirectTimeout bounds the attempt to tell a node directly before falling back to a
	// stored notice and the lease wait.
	DirectTimeout time.Duration
}

// Teller puts messages into mailboxes and tells nodes about them, and tells nodes of
// sessions taken over. Its methods are safe for concurrent use.
type Teller struct {
	cfg     TellerConfig
	store   Mailboxes
	members Members
	dial    Dialer
	log     *slog.Logger
}

// NewTeller returns a Teller.
func NewTeller(cfg TellerConfig, st Mailboxes, members Members, dial Dialer, log *slog.Logger) *Teller {
	if cfg.DirectTimeout <= 0 {
		cfg.DirectTimeout = time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	return &Teller{cfg: cfg, store: st, members: members, dial: dial, log: log.With("component", "teller")}
}

// Queue appends msgs to their recipients' mailboxes (one client's messages in slice
// order) and, before it returns, makes sure that the node named by each recipient's
// presence (read in the same step as the append) knows its mailbox holds messages: it
// will not send that client anything newer first, and it will read the mailbox soon,
// without further traffic. A presence whose session is origin is not told (it is the
// caller's own).
//
// The results are per message, as store.Append gives them. An error means the messages
// must be taken as not accepted (some may be in a mailbox; a retry is recognised by id);
// when only the telling failed, the results say what the store did all the same.
func (t *Teller) Queue(ctx context.Context, origin string, msgs []store.Message) ([]store.AppendResult, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	res, err := t.store.Append(ctx, t.cfg.MailboxLimit, msgs)
	if err != nil {
		return nil, err
	}
	if len(res) != len(msgs) {
		return nil, fmt.Errorf("queue: store answered %d results for %d messages", len(res), len(msgs))
	}
	type target struct {
		node  string
		epoch int64
	}
	tell := map[target][]store.Notice{}
	var order []target
	seen := map[string]bool{}
	for _, r := range res {
		p := r.Presence
		if r.Err != nil || !p.Online() || p.Session == origin || seen[p.Client] {
			continue
		}
		seen[p.Client] = true
		k := target{p.Node, p.Epoch}
		if _, ok := tell[k]; !ok {
			order = append(order, k)
		}
		tell[k] = append(tell[k], store.Notice{Kind: store.NoticeMailbox, Client: p.Client})
	}
	errs := make(chan error, len(order))
	for _, k := range order {
		go func() { errs <- t.Tell(ctx, k.node, k.epoch, tell[k]) }()
	}
	var all []error
	for range order {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	if len(all) > 0 {
		return res, fmt.Errorf("queue: %w", errors.Join(all...))
	}
	return res, nil
}

// Tell makes sure node, if it may still be live under epoch, has acted on notices before
// it returns: directly over the wire when the node answers in time, otherwise by storing
// the notices and waiting out the node's delivery lease (or until that epoch leaves the
// live set). An epoch that has left the live set needs no telling: its node fenced itself
// before it left, and it reads the mailboxes and checks the sessions of its clients
// before it sends anything under a new epoch. An epoch newer than anything the live set
// has shown (a node that registered a moment ago) is told through the store too.
func (t *Teller) Tell(ctx context.Context, node string, epoch int64, ns []store.Notice) error {
	if len(ns) == 0 {
		return nil
	}
	if node == t.cfg.Self && t.cfg.Local != nil {
		for _, n := range ns {
			t.cfg.Local(n)
		}
		return nil
	}
	m, state := t.epochState(node, epoch)
	if state == epochGone {
		// Nothing to wait for, but a revocation is stored all the same: a node that comes
		// back under a new epoch still holds its sessions, and acts on its notices before
		// it writes to any of them again (lease.Holder.AwaitRound).
		if revokes := onlyRevokes(ns); len(revokes) > 0 {
			if err := t.store.Notify(ctx, node, revokes...); err != nil {
				return fmt.Errorf("tell %s: %w", node, err)
			}
		}
		return nil
	}
	if state == epochLive {
		err := t.direct(ctx, m, epoch, ns)
		if err == nil {
			return nil
		}
		t.log.Debug("node not told directly; storing a notice and waiting out its lease", "node", node, "error", err)
	}
	if err := t.store.Notify(ctx, node, ns...); err != nil {
		return fmt.Errorf("tell %s: %w", node, err)
	}
	stored := time.Now()
	// Past the lease the node has seen the notice, whatever happens to it. Until the
	// member shows its own lease (an epoch not seen yet), the longest the Teller knows of
	// counts.
	wait := waitFor(m, state == epochLive)
	if state != epochLive {
		wait = max(MaxTellWait(t.members.Members()), waitFor(m, m.LeaseMillis > 0))
	}
	until := stored.Add(wait)
	triedDirect := state == epochLive
	for {
		changed := t.members.Changed()
		m, state = t.epochState(node, epoch)
		switch {
		case state == epochGone:
			return nil // the notice is stored: see above
		case state == epochLive:
			if u := stored.Add(waitFor(m, true)); u.After(until) {
				until = u
			}
			if !triedDirect {
				// An epoch the live set had not shown yet has appeared: tell it directly.
				triedDirect = true
				if t.direct(ctx, m, epoch, ns) == nil {
					return nil
				}
			}
		}
		timer := time.NewTimer(time.Until(until))
		select {
		case <-timer.C:
			return nil
		case <-changed:
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("tell %s: waiting out its lease: %w", node, ctx.Err())
		}
	}
}

// onlyRevokes returns the revocation notices among ns.
func onlyRevokes(ns []store.Notice) []store.Notice {
	var out []store.Notice
	for _, n := range ns {
		if n.Kind == store.NoticeRevoke {
			out = append(out, n)
		}
	}
	return out
}

// waitFor is how long after storing a notice its node must have seen it: the node's lease
// (the default when its member data is not known) plus 10% for clocks that run at
// slightly different rates.
func waitFor(m coord.Member, known bool) time.Duration {
	d := DefaultDuration
	if known && m.LeaseMillis > 0 {
		d = time.Duration(m.LeaseMillis) * time.Millisecond
	}
	return d + d/10
}

// MaxTellWait bounds how long Tell (and so Queue) may wait out a lease, for a caller
// sizing its context: the longest lease among live members or the default, with the
// margin. Callers add the time their store calls may take.
func MaxTellWait(members []coord.Member) time.Duration {
	d := waitFor(coord.Member{}, false)
	for _, m := range members {
		d = max(d, waitFor(m, true))
	}
	return d
}

// direct tells the node over the wire: one Drain for every mailbox notice, one Kick per
// revoked session. Any answer means the node has acted (a session that is not there
// needs nothing).
func (t *Teller) direct(ctx context.Context, m coord.Member, epoch int64, ns []store.Notice) error {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.DirectTimeout)
	defer cancel()
	conn, err := t.dial.Get(ctx, m.InternalAddr)
	if err != nil {
		return err
	}
	var drain []string
	for _, n := range ns {
		switch n.Kind {
		case store.NoticeMailbox:
			drain = append(drain, n.Client)
		case store.NoticeRevoke:
			r, err := conn.Kick(ctx, wire.Kick{Epoch: epoch, Client: n.Client, Session: n.Session})
			if err != nil {
				return err
			}
			if r.Status == wire.StatusFailed || r.Status == wire.StatusBadRequest {
				return fmt.Errorf("kick %s: %s %s", n.Client, r.Status, r.Detail)
			}
		}
	}
	if len(drain) > 0 {
		r, err := conn.Drain(ctx, wire.Drain{Epoch: epoch, Clients: drain})
		if err != nil {
			return err
		}
		if r.Status == wire.StatusFailed || r.Status == wire.StatusBadRequest {
			return fmt.Errorf("drain: %s %s", r.Status, r.Detail)
		}
	}
	return nil
}
